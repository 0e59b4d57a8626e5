// The dashboard with the lab around it: the Lab panel when a lab is open, "Open lab file…" when none is, a lab
// file dropped on the page opened (a snapshot file still goes to the dashboard), and what was wrong with a lab
// file or link that could not be opened (the page goes on as it was: nothing is lost).

import { useEffect, useState, useSyncExternalStore, type ReactNode } from "react";
import { LabPanel } from "./LabPanel.tsx";
import type { LabSession } from "./session.ts";

/** What the page gives the shell: the open lab, and how to open another. */
export interface LabHolder {
  session: LabSession | undefined;
  /** why the last lab could not be opened */
  error: string | undefined;
  version: number;
  subscribe(fn: () => void): () => void;
  /** opens a lab file's text (validated; built into the page) */
  openText(text: string, source: string): void;
  close(): void;
  dismissError(): void;
}

const isLabFile = (f: File) => /\.json$/i.test(f.name);

export function LabShell({ labs, children }: { labs: LabHolder; children: ReactNode }) {
  useSyncExternalStore(labs.subscribe, () => labs.version);
  const [, setTick] = useState(0);
  const session = labs.session;
  useEffect(() => session?.subscribe(() => setTick((t) => t + 1)), [session]);

  const openFiles = async (files: File[]) => {
    for (const f of files) labs.openText(await f.text(), f.name);
  };

  return (
    <div className={session ? "lab-shell" : "lab-shell-none"} style={session ? undefined : { height: "100%" }}
      onDropCapture={(ev) => {
        const files = Array.from(ev.dataTransfer?.files ?? []);
        if (files.length === 0 || !files.every(isLabFile)) return;
        // a lab file: not the dashboard's (it takes snapshot files)
        ev.preventDefault();
        ev.stopPropagation();
        void openFiles(files);
      }}>
      {children}
      {session && <LabPanel session={session} onClose={() => labs.close()} />}
      {!session && (
        <label className="lab-chooser" title="Open a lab file (.lab.json): its networks, VMs, steps and checks">
          <span className="button-like" data-testid="lab-open">Open lab file…</span>
          <input type="file" accept=".json,application/json" hidden data-testid="lab-open-input"
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
