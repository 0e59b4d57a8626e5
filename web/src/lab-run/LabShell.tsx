// The dashboard with the lab around it: the Lab panel when a lab is open, "Open lab file…" when none is, a lab
// file dropped on the page opened (a snapshot file still goes to the dashboard), and what was wrong with a lab
// file or link that could not be opened (the page goes on as it was: nothing is lost).

import { useEffect, useState, useSyncExternalStore, type ReactNode } from "react";
import { LabPanel, downloadLab } from "./LabPanel.tsx";
import type { LabSession } from "./session.ts";
import type { Lab } from "../labs/types.ts";

/** What the page gives the shell: the open lab, and how to open another. */
export interface LabHolder {
  session: LabSession | undefined;
  /** why the last lab could not be opened */
  error: string | undefined;
  version: number;
  subscribe(fn: () => void): () => void;
  /** opens lab files: a lab (.json), a Kathará lab's files, a containerlab topology (validated; built) */
  openFiles(files: { name: string; text: string }[]): void;
  close(): void;
  dismissError(): void;
  /** the lab file of the page as it is now */
  currentLab(): Lab;
  subscribePage(fn: () => void): () => void;
}

const isLabFile = (f: File) => /\.json$|(^|\/)lab\.conf$|\.startup$|\.ya?ml$/i.test(f.name);
/** a file's path inside the folder chosen or dropped (a Kathará lab's files are named by it) */
const pathOf = (f: File) => (f as File & { webkitRelativePath?: string }).webkitRelativePath || f.name;

export function LabShell({ labs, children }: { labs: LabHolder; children: ReactNode }) {
  useSyncExternalStore(labs.subscribe, () => labs.version);
  const [, setTick] = useState(0);
  const session = labs.session;
  useEffect(() => session?.subscribe(() => setTick((t) => t + 1)), [session]);

  const openFiles = async (files: File[]) => {
    labs.openFiles(await Promise.all(files.map(async (f) => ({ name: pathOf(f), text: await f.text() }))));
  };

  return (
    <div className={session ? "lab-shell" : "lab-shell-none"} style={session ? undefined : { height: "100%" }}
      onDropCapture={(ev) => {
        const files = Array.from(ev.dataTransfer?.files ?? []);
        if (files.length === 0 || !files.some(isLabFile) || files.some((f) => /\.tvsnap$/i.test(f.name))) return;
        // a lab file: not the dashboard's (it takes snapshot files)
        ev.preventDefault();
        ev.stopPropagation();
        void openFiles(files);
      }}>
      {children}
      {session && <LabPanel session={session} labs={labs} onClose={() => labs.close()} />}
      {!session && (
        <label className="lab-chooser" title="Open a lab file (.lab.json), a Kathará lab (lab.conf and its .startup files) or a containerlab topology (.clab.yml)">
          <button className="button-like" data-testid="lab-export-page" title="The page's VMs and networks as a lab file (to add steps and checks to, and share)"
            onClick={(e) => { e.preventDefault(); downloadLab(labs.currentLab(), "my lab"); }}>Export as lab</button>{" "}
          <span className="button-like" data-testid="lab-open">Open lab file…</span>
          <input type="file" multiple hidden data-testid="lab-open-input"
            onChange={(e) => { void openFiles(Array.from(e.currentTarget.files ?? [])); e.currentTarget.value = ""; }} />
        </label>
      )}
      {labs.error && (
        <div className="lab-open-error" role="alert" data-testid="lab-open-error">
          <pre>{labs.error}</pre>
          <button onClick={() => labs.dismissError()}>Dismiss</button>
        </div>
      )}
    </div>
  );
}
