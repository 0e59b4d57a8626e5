// The dashboard with the lab around it: the Lab panel when a lab is open, "Open lab file…" when none is, a lab
// file dropped on the page opened (a snapshot file still goes to the dashboard), and what was wrong with a lab
// file or link that could not be opened (the page goes on as it was: nothing is lost).

import { useSyncExternalStore, type ReactNode } from "react";
import { LabPanel, downloadLab } from "./LabPanel.tsx";
import { GALLERY } from "../labs/gallery/index.ts";
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
  openValue(value: unknown, source: string): void;
  close(): void;
  dismissError(): void;
  /** the lab file of the page as it is now */
  currentLab(): Lab;
  /** the gallery (the Labs panel) is shown when no lab is open */
  gallery: boolean;
  showGallery(on: boolean): void;
  subscribePage(fn: () => void): () => void;
}

const isLabFile = (f: File) => /\.json$|(^|\/)lab\.conf$|\.startup$|\.ya?ml$/i.test(f.name);
/** a file's path inside the folder chosen or dropped (a Kathará lab's files are named by it) */
const pathOf = (f: File) => (f as File & { webkitRelativePath?: string }).webkitRelativePath || f.name;

/** The labs shipped with the app, and how to open one of a file. */
function GalleryPanel({ labs, debian, onClose, openFiles }: {
  labs: LabHolder; debian: { missing: string } | object; onClose: () => void; openFiles: (files: File[]) => void;
}) {
  const missing = "missing" in debian ? debian.missing : undefined;
  return (
    <aside className="lab-panel" data-testid="gallery" aria-label="Labs">
      <header className="lab-head">
        <h2>Labs</h2>
        <button className="lab-close" title="Hide the labs" onClick={onClose}>×</button>
      </header>
      <p className="muted">A lab builds its networks and VMs in this page and guides you through steps, with checks of your work.</p>
      <ul className="gallery">
        {GALLERY.map((g) => (
          <li key={g.id} data-testid={`gallery-${g.id}`}>
            <div className="gallery-title">{g.title}</div>
            <div className="gallery-summary">{g.summary}</div>
            {g.needsDebian && missing
              ? <div className="muted" data-testid={`gallery-${g.id}-missing`}>Needs the Debian image: {missing}</div>
              : <button className="primary" data-testid={`gallery-open-${g.id}`} onClick={() => labs.openValue(g.lab, g.title)}>Open{g.needsDebian ? " (Debian)" : ""}</button>}
          </li>
        ))}
      </ul>
      <div className="lab-actions">
        <label>
          <span className="button-like">Open lab file…</span>
          <input type="file" multiple hidden onChange={(e) => { openFiles(Array.from(e.currentTarget.files ?? [])); e.currentTarget.value = ""; }} />
        </label>
        <button data-testid="lab-export-page" title="The page's VMs and networks as a lab file (to add steps and checks to, and share)"
          onClick={() => downloadLab(labs.currentLab(), "my lab")}>Export this page as a lab</button>
      </div>
    </aside>
  );
}

const openFilesIn = async (labs: LabHolder, files: File[]) => {
  labs.openFiles(await Promise.all(files.map(async (f) => ({ name: pathOf(f), text: await f.text() }))));
};

/** The dashboard's toolbar buttons for labs: Labs (the gallery, when no lab is open) and Open lab… (a file). */
export function LabButtons({ labs }: { labs: LabHolder }) {
  useSyncExternalStore(labs.subscribe, () => labs.version);
  return (
    <>
      {!labs.session && (
        <button className={labs.gallery ? "on" : ""} data-testid="show-gallery" title="The labs shipped with Tabvisor"
          onClick={() => labs.showGallery(!labs.gallery)}>Labs</button>
      )}
      <label className="button-like" data-testid="lab-open" title="Open a lab file (.lab.json), a Kathará lab (lab.conf and its .startup files) or a containerlab topology (.clab.yml)">
        Open lab…
        <input type="file" multiple hidden data-testid="lab-open-input"
          onChange={(e) => { void openFilesIn(labs, Array.from(e.currentTarget.files ?? [])); e.currentTarget.value = ""; }} />
      </label>
    </>
  );
}

export function LabShell({ labs, debian, children }: { labs: LabHolder; debian: { missing: string } | object; children: ReactNode }) {
  useSyncExternalStore(labs.subscribe, () => labs.version);
  // (the Lab panel follows its session itself)
  const gallery = labs.gallery;
  const session = labs.session;
  const openFiles = (files: File[]) => openFilesIn(labs, files);

  return (
    <div className={session || gallery ? "lab-shell" : "lab-shell-none"} style={session || gallery ? undefined : { height: "100%" }}
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
      {!session && gallery && <GalleryPanel labs={labs} debian={debian} onClose={() => labs.showGallery(false)} openFiles={(f) => void openFiles(f)} />}
      {labs.error && (
        <div className="lab-open-error" role="alert" data-testid="lab-open-error">
          <pre>{labs.error}</pre>
          <button onClick={() => labs.dismissError()}>Dismiss</button>
        </div>
      )}
    </div>
  );
}
