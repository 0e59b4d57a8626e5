// The Lab panel beside the consoles: the lab's title and description, its build (progress, or why it failed),
// its steps with click-to-run snippets and checks (pass or fail, with the hint), progress, and Reset lab, Export
// (the lab file) and Share (a link holding the whole lab).

import { useState, useSyncExternalStore } from "react";
import type { LabSession } from "./session.ts";
import type { LabHolder } from "./LabShell.tsx";
import { Markdown } from "./markdown.tsx";
import { encodeLabLink, labFitsLink } from "../labs/share.ts";
import "./lab-panel.css";

/** Saves the lab file as a download. */
export function downloadLab(lab: unknown, title: string): void {
  const blob = new Blob([JSON.stringify(lab, null, 2) + "\n"], { type: "application/json" });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = `${title.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "") || "lab"}.lab.json`;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

/** The lab file as the page has it now, shown while open (it follows the dashboard's edits). */
function LabFileView({ labs }: { labs: LabHolder }) {
  const text = useSyncExternalStore(labs.subscribePage, () => JSON.stringify(labs.currentLab(), null, 2));
  return <pre className="lab-file" data-testid="lab-file">{text}</pre>;
}

export function LabPanel({ session, labs, onClose }: { session: LabSession; labs: LabHolder; onClose: () => void }) {
  const [showFile, setShowFile] = useState(false);
  useSyncExternalStore(session.subscribe, session.getVersion);
  const [share, setShare] = useState<{ link?: string; note: string }>();
  const [confirmReset, setConfirmReset] = useState(false);
  const { full, build } = session;
  const { passed, total } = session.progress();
  const building = build.kind === "building";

  const doShare = () => {
    const lab = labs.currentLab();
    const fit = labFitsLink(lab);
    if (!fit.fits) {
      setShare({ note: `This lab is too large for a link (${fit.chars} characters): share the file instead (Export).` });
      return;
    }
    const link = `${location.origin}${location.pathname}${location.search}${encodeLabLink(lab)}`;
    void navigator.clipboard?.writeText(link).catch(() => {});
    setShare({ link, note: `A link holding the whole lab (${link.length} characters); copied to the clipboard.` });
  };

  return (
    <aside className="lab-panel" data-testid="lab-panel" aria-label="Lab">
      <header className="lab-head">
        <h2 data-testid="lab-title">{full.title}</h2>
        <button className="lab-close" title="Close the lab panel (its VMs stay)" onClick={onClose}>×</button>
      </header>
      <div className="lab-actions">
        <button data-testid="lab-export" title="The lab file, with what was changed in the dashboard" onClick={() => downloadLab(labs.currentLab(), full.title)}>Export</button>
        <button data-testid="lab-share" onClick={doShare}>Share</button>
        <button data-testid="lab-reset" disabled={building} onClick={() => setConfirmReset(true)}>Reset lab</button>
      </div>
      {confirmReset && (
        <div className="lab-confirm" data-testid="lab-reset-confirm">
          Delete this lab's VMs (and what was done in them) and build it again from its file?
          <div>
            <button className="primary" data-testid="lab-reset-yes" onClick={() => { setConfirmReset(false); void session.reset(); }}>Reset</button>
            <button onClick={() => setConfirmReset(false)}>Cancel</button>
          </div>
        </div>
      )}
      {share && (
        <div className="lab-share" data-testid="lab-share-box">
          <div>{share.note}</div>
          {share.link && <input readOnly value={share.link} data-testid="lab-share-link" onFocus={(e) => e.currentTarget.select()} />}
        </div>
      )}
      {build.kind === "building" && (
        <div className="lab-build" data-testid="lab-building">
          Building the lab: {build.progress.doing || "…"}
          <progress max={build.progress.total} value={build.progress.done} />
        </div>
      )}
      {build.kind === "failed" && (
        <div className="lab-error" role="alert" data-testid="lab-build-error">
          {build.error}
          <div><button onClick={() => void session.start()}>Try again</button></div>
        </div>
      )}
      {session.notes.length > 0 && (
        <details className="lab-notes" data-testid="lab-import-notes">
          <summary>{session.notes.length} thing{session.notes.length === 1 ? "" : "s"} the import left out</summary>
          <ul>{session.notes.map((n, i) => <li key={i}>{n}</li>)}</ul>
        </details>
      )}
      <details className="lab-file-box" onToggle={(e) => setShowFile(e.currentTarget.open)}>
        <summary data-testid="lab-file-toggle">Lab file</summary>
        {showFile && <LabFileView labs={labs} />}
      </details>
      {full.description && <div className="lab-description"><Markdown text={full.description} /></div>}
      {total > 0 && <div className="lab-progress" data-testid="lab-progress">{passed} of {total} checks passed</div>}
      <ol className="lab-steps">
        {full.steps.map((step, si) => (
          <li key={si} className="lab-step">
            {step.title && <h3>{step.title}</h3>}
            <Markdown text={step.text} />
            {step.snippets.map((sn, i) => (
              <button key={i} className="lab-snippet" data-testid={`snippet-${si}-${i}`} disabled={build.kind !== "built"}
                title={`Type into ${sn.vm}'s console`} onClick={() => session.snippet(si, i)}>
                <span className="lab-snippet-vm">{sn.vm}$</span> {sn.label}
              </button>
            ))}
            {step.checks.map((c, i) => {
              const r = session.results.get(`${si}.${i}`);
              return (
                <div key={i} className="lab-check">
                  <button data-testid={`check-${si}-${i}`} disabled={build.kind !== "built" || r === "running"} onClick={() => void session.check(si, i)}>
                    {r === "running" ? "Checking…" : "Check"}
                  </button>
                  <span className="lab-check-title">{c.title}</span>
                  {r && r !== "running" && (
                    <div className={r.pass ? "lab-pass" : "lab-fail"} data-testid={`check-result-${si}-${i}`} data-pass={r.pass}>
                      {r.pass ? "✓ Passed" : `✗ ${r.detail}`}
                      {!r.pass && c.hint && <div className="lab-hint">Hint: {c.hint}</div>}
                    </div>
                  )}
                </div>
              );
            })}
          </li>
        ))}
      </ol>
    </aside>
  );
}
