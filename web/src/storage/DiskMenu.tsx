// Disk… on a VM's toolbar: Reset disk (back to its base: empty), Export disk (a raw image download) and Import
// disk (a raw image file becomes the disk). Reset and import replace the disk whole, so they ask first, and power a
// running VM off (the guest cannot keep a file system open on a disk that changes under it). Outcomes are said in
// the page's notices (or beside the button when the page has none).

import { useEffect, useRef, useState } from "react";
import type { Hypervisor, VmEntry } from "../hypervisor.ts";
import { fmtBytes } from "../meters.ts";

type Say = (kind: "info" | "error", text: string) => void;

const mib = (n: number) => `${(n / 1048576).toFixed(n % 1048576 ? 1 : 0)} MiB`;

export function DiskMenu({ hv, e, say, disabled }: { hv: Hypervisor; e: VmEntry; say?: Say; disabled: boolean }) {
  const [open, setOpen] = useState(false);
  /** the replacement asked about: reset, or an image file to import */
  const [asking, setAsking] = useState<{ op: "reset" } | { op: "import"; file: File }>();
  const [note, setNote] = useState<string>();
  const picker = useRef<HTMLInputElement>(null);
  useEffect(() => { setOpen(false); setAsking(undefined); setNote(undefined); }, [e.id]);
  const hasDisk = (e.spec.machine ? e.spec.machine.disks.length : e.spec.diskMiB) > 0;
  if (!hasDisk) return null;
  const tell: Say = (kind, text) => { setNote(kind === "error" ? text : undefined); say?.(kind, text); };
  const on = e.state === "running" || e.state === "booting" || e.state === "paused";
  const vm = e.spec.name;
  const busy = !!e.busy;

  const exportDisk = async () => {
    setOpen(false);
    try {
      const t0 = performance.now();
      const blob = await hv.exportDisk(e.id);
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = `${vm}-disk.img`;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
      tell("info", `The disk of ${vm} was exported (${mib(blob.size)} raw image, ${((performance.now() - t0) / 1000).toFixed(1)} s).`);
    } catch (err) {
      tell("error", `The disk of ${vm} could not be exported: ${(err as Error).message}`);
    }
  };

  const replace = async () => {
    const what = asking;
    setAsking(undefined);
    if (!what) return;
    try {
      if (what.op === "reset") {
        await hv.resetDisk(e.id);
        tell("info", `The disk of ${vm} was reset: it is empty again.`);
      } else {
        await hv.importDisk(e.id, what.file);
        tell("info", `${what.file.name} is now the disk of ${vm} (power it on to use it).`);
      }
    } catch (err) {
      const m = (err as Error).message.replace(/^Error: /, "");
      tell("error", what.op === "reset"
        ? `The disk of ${vm} could not be reset: ${m}. The disk is as it was.`
        : `${what.file.name} could not be imported into ${vm}: ${m}. The disk is as it was.`);
    }
  };

  const pick = (file: File | undefined) => {
    if (!file) return;
    const size = e.stats?.disk?.sizeBytes ?? e.spec.diskMiB * 1048576;
    // checked here so a wrong file is refused at once; the worker checks it again
    if (file.size !== size) {
      tell("error", `${file.name} could not be imported into ${vm}: it is ${mib(file.size)} (${file.size} bytes) but the disk is ${mib(size)}; an image must be exactly the disk's size. The disk is as it was.`);
      return;
    }
    setAsking({ op: "import", file });
  };

  return (
    <span className="menu-anchor">
      <button data-testid="disk-menu" disabled={disabled || busy} title="Reset, export or import this VM's disk (/dev/vda)"
        onClick={() => setOpen(!open)}>{e.busy?.op === "disk" ? e.busy.label : "Disk…"}</button>
      <input ref={picker} type="file" hidden data-testid="disk-import-input"
        onChange={(ev) => { const f = ev.currentTarget.files?.[0]; ev.currentTarget.value = ""; pick(f); }} />
      {note && <span className="detail disk-note" data-testid="disk-note">{note}</span>}
      {open && (
        <div className="menu" role="menu" data-testid="disk-actions">
          <div className="menu-note">
            {e.stats?.disk?.persistent ? `Kept in this browser: ${fmtBytes(e.stats.disk.storedBytes ?? 0)} stored` : "In memory only (not kept when the page goes)"}
          </div>
          <button role="menuitem" data-testid="disk-export" onClick={() => void exportDisk()}>Export disk (raw image)</button>
          <button role="menuitem" data-testid="disk-import" onClick={() => { setOpen(false); picker.current?.click(); }}>Import disk…</button>
          <button role="menuitem" className="danger" data-testid="disk-reset" onClick={() => { setOpen(false); setAsking({ op: "reset" }); }}>Reset disk…</button>
        </div>
      )}
      {asking && (
        <div className="menu" role="dialog" data-testid="disk-confirm-box">
          <div className="menu-note">
            {asking.op === "reset"
              ? `Erase the disk of ${vm}? Everything on it is lost; it starts empty.`
              : `Replace the disk of ${vm} with ${asking.file.name}? What is on the disk now is lost.`}
            {on && ` ${vm} is on: it will be powered off first.`}
          </div>
          <button className="danger" data-testid="disk-confirm" onClick={() => void replace()}>
            {asking.op === "reset" ? "Reset disk" : "Import"}
          </button>
          <button data-testid="disk-cancel" onClick={() => setAsking(undefined)}>Cancel</button>
        </div>
      )}
    </span>
  );
}

/** A VM's disk storage and its problem, for its card. */
export function DiskLine({ e }: { e: VmEntry }) {
  const d = e.stats?.disk;
  if (!e.diskProblem && !d?.persistent) return null;
  return (
    <div className="card-disk">
      {d?.persistent && <span className="muted" data-testid="card-disk-stored" data-value={d.storedBytes ?? 0}
        title="this VM's own disk blocks, kept in the browser's storage">disk {fmtBytes(d.storedBytes ?? 0)} stored</span>}
      {e.diskProblem && <div className="crash-why" data-testid="disk-problem">Disk: {e.diskProblem}</div>}
    </div>
  );
}

/** The storage line of the host panel: the VMs' disks, and the page's use of the browser's storage. */
export function StorageRow({ hv }: { hv: Hypervisor }) {
  if (!hv.persistDisks) return null;
  const s = hv.storage;
  return (
    <div className="host-row" title={s.persisted ? "the browser keeps this page's storage (it will not evict it)" : "the browser may evict this page's storage when it runs short of space"}>
      <span className="label">Disk storage</span>
      <span className="value" data-testid="host-storage" data-value={hv.diskStoredBytes()}>
        {fmtBytes(hv.diskStoredBytes())} in VM disks
        {s.usage !== undefined && <span className="muted"> · page {fmtBytes(s.usage)}{s.quota ? ` of ${fmtBytes(s.quota)}` : ""}</span>}
        {s.persisted !== undefined && <span className="muted" data-testid="storage-persisted"> · {s.persisted ? "persistent" : "not persistent"}</span>}
      </span>
    </div>
  );
}
