// Files on a VM's toolbar: Upload (a file picker; dropping files on the console does the same) and Download (a path
// in the guest), with the transfers under way shown beside the button.

import { useEffect, useRef, useState, useSyncExternalStore } from "react";
import type { Hypervisor, VmEntry } from "../hypervisor.ts";
import { UPLOAD_DIR, type Transfers } from "./transfers.ts";

export function FilesMenu({ hv, e, transfers, disabled }: { hv: Hypervisor; e: VmEntry; transfers: Transfers; disabled: boolean }) {
  useSyncExternalStore(transfers.subscribe, transfers.getVersion);
  const [open, setOpen] = useState(false);
  const [path, setPath] = useState("/root/");
  const picker = useRef<HTMLInputElement>(null);
  useEffect(() => setOpen(false), [e.id]);
  const live = hv.live(e);
  const under = transfers.of(e.id);
  const download = () => {
    setOpen(false);
    void transfers.download(e, path);
  };
  return (
    <span className="menu-anchor">
      <button data-testid="files" disabled={disabled || !live}
        title={`Put files into the VM (${UPLOAD_DIR}; or drop them on its console) or download one of its files`}
        onClick={() => setOpen(!open)}>Files…</button>
      {under.map((t) => (
        <span key={t.key} className="pill transfer" data-testid="transfer" data-dir={t.dir}
          title={t.path}>{t.dir === "up" ? "↑" : "↓"} {t.path.split("/").pop()} {t.total ? `${Math.floor((100 * t.done) / t.total)}%` : "…"}</span>
      ))}
      <input ref={picker} type="file" multiple hidden data-testid="upload-input"
        onChange={(ev) => {
          const files = Array.from(ev.currentTarget.files ?? []);
          ev.currentTarget.value = "";
          for (const f of files) void transfers.upload(e, f);
        }} />
      {open && (
        <div className="menu" role="menu" data-testid="files-menu">
          <button role="menuitem" data-testid="upload" onClick={() => { setOpen(false); picker.current?.click(); }}>
            Upload to {UPLOAD_DIR}…
          </button>
          <form className="menu-form" onSubmit={(ev) => { ev.preventDefault(); download(); }}>
            <input data-testid="download-path" value={path} spellCheck={false} aria-label="path in the guest"
              onChange={(ev) => setPath(ev.currentTarget.value)} />
            <button type="submit" data-testid="download">Download</button>
          </form>
        </div>
      )}
    </span>
  );
}
