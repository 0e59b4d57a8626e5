// The Snapshots view (the list kept in the browser, with restore, download and delete, and opening a file), and the
// notices that float over the dashboard: what the last snapshot operation did or why it failed, and the offer to
// bring the last visit's VMs back.

import { useEffect, useRef, useState, useSyncExternalStore } from "react";
import type { Snapshots } from "./snapshots.ts";
import { SNAPSHOT_EXT } from "./snapshots.ts";
import type { Autosave } from "./autosave.ts";
import { fmtBytes } from "../meters.ts";

const noop = () => () => {};

/** Re-renders the caller when snapshots, notices or operations under way change. */
export function useSnapshots(snaps: Snapshots | undefined): Snapshots | undefined {
  useSyncExternalStore(snaps?.subscribe ?? noop, snaps?.getVersion ?? (() => 0));
  return snaps;
}

/** Whether the browser keeps this site's storage, and how much of its quota is used. */
function useStorageEstimate(version: number): string | undefined {
  const [text, setText] = useState<string>();
  useEffect(() => {
    let live = true;
    void navigator.storage?.estimate?.().then((est) => {
      if (live && est.quota) setText(`${fmtBytes(est.usage ?? 0)} of ${fmtBytes(est.quota)} of this browser's storage used`);
    }).catch(() => {});
    return () => { live = false; };
  }, [version]);
  return text;
}

export function SnapshotsView({ snaps, onOpened }: { snaps: Snapshots; onOpened: (id: number) => void }) {
  useSnapshots(snaps);
  const file = useRef<HTMLInputElement>(null);
  const [confirm, setConfirm] = useState<string>();
  const usage = useStorageEstimate(snaps.records.length);
  const hv = snaps.hv;
  const open = async (files: FileList | null) => {
    for (const f of Array.from(files ?? [])) {
      const e = await snaps.openFile(f);
      if (e) onOpened(e.id);
    }
    if (file.current) file.current.value = "";
  };
  return (
    <div className="snapshots">
      <div className="snapshots-head">
        <h2>Snapshots</h2>
        <span className="muted">{usage}</span>
        <span className="tabs-fill" />
        <input ref={file} type="file" accept={`${SNAPSHOT_EXT},application/octet-stream`} data-testid="snapshot-file" hidden
          onChange={(ev) => void open(ev.target.files)} />
        <button data-testid="open-snapshot" onClick={() => file.current?.click()}>Open file…</button>
      </div>
      <p className="muted snapshots-hint">
        A snapshot is a whole machine as it was: memory, devices, disk and running programs. Take one with Snapshot on
        a VM's toolbar; restoring puts it back into its VM (or makes the VM again when it is gone). Download one as a
        {" "}{SNAPSHOT_EXT} file, and open such a file here or drop it anywhere on the page to start a VM from it (files
        made with <code>npx tabvisor</code> in Node open too).
      </p>
      {snaps.records.length === 0 ? (
        <div className="muted snapshots-empty" data-testid="snapshots-empty">{snaps.loaded ? "No snapshots yet." : "Reading…"}</div>
      ) : (
        <table className="snapshots-table" data-testid="snapshot-list">
          <thead>
            <tr><th>Name</th><th>VM</th><th>Taken</th><th className="num">Size</th><th /></tr>
          </thead>
          <tbody>
            {snaps.records.map((r) => {
              const vm = hv.byName(r.vmName);
              const busy = vm?.busy;
              return (
                <tr key={r.id} data-testid="snapshot-row" data-snapshot={r.id} data-vm={r.vmName} data-kind={r.kind}>
                  <td>{r.name}{r.kind === "autosave" && <span className="pill snap-kind">autosave</span>}</td>
                  <td className="mono">{r.vmName}{!vm && <span className="muted"> (gone)</span>}</td>
                  <td>{new Date(r.createdAt).toLocaleString()}</td>
                  <td className="num">{fmtBytes(r.size)}</td>
                  <td className="row-actions">
                    <button data-testid="snapshot-restore" disabled={!!busy}
                      title={vm ? `Put this snapshot into ${r.vmName} in place of the machine it runs now` : `Make ${r.vmName} again from this snapshot`}
                      onClick={() => void snaps.restore(r.id).then(() => { const e = hv.byName(r.vmName); if (e) onOpened(e.id); })}>
                      {busy?.op === "restore" ? busy.label : vm ? "Restore" : "Restore as new VM"}
                    </button>
                    <button data-testid="snapshot-download" onClick={() => void snaps.download(r.id)}>Download</button>
                    {confirm === r.id
                      ? <button className="danger" data-testid="snapshot-delete-confirm" onClick={() => { setConfirm(undefined); void snaps.remove(r.id); }}>Delete it</button>
                      : <button data-testid="snapshot-delete" onClick={() => setConfirm(r.id)}>Delete</button>}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </div>
  );
}

/** The latest notice, and the offer to resume the last visit's VMs. */
export function Notices({ snaps, autosave }: { snaps: Snapshots; autosave?: Autosave }) {
  useSnapshots(snaps);
  const n = snaps.notice;
  // an information fades after a while; an error stays until dismissed
  useEffect(() => {
    if (n?.kind !== "info") return;
    const t = setTimeout(() => { if (snaps.notice?.seq === n.seq) snaps.dismiss(); }, 8000);
    return () => clearTimeout(t);
  }, [n?.seq]);
  const offered = autosave?.offered ?? [];
  if (!n && offered.length === 0) return null;
  return (
    <div className="notices">
      {offered.length > 0 && (
        <div className="notice notice-resume" role="status" data-testid="resume-banner">
          <span>
            Your VMs were saved when you left ({offered.map((r) => r.vmName).join(", ")},{" "}
            {new Date(Math.max(...offered.map((r) => r.createdAt))).toLocaleString()}). Bring them back where they were?
          </span>
          <button className="primary" data-testid="resume-restore" title="Each VM's memory and disk as they were when saved: what it wrote to its disk since is replaced (a machine never runs on a disk of another moment)" onClick={() => void autosave!.restoreAll()}>Restore</button>
          <button data-testid="resume-fresh" title="Keep the freshly started VMs (their disks as they last wrote them) and drop what was saved" onClick={() => void autosave!.startFresh()}>Start fresh</button>
        </div>
      )}
      {n && (
        <div className={`notice notice-${n.kind}`} role={n.kind === "error" ? "alert" : "status"} data-testid="notice" data-kind={n.kind}>
          <span data-testid="notice-text">{n.text}</span>
          <button className="icon" title="Dismiss" data-testid="notice-dismiss" onClick={() => snaps.dismiss()}>×</button>
        </div>
      )}
    </div>
  );
}
