// Open port… on a VM's toolbar: shows what the VM serves on a TCP port (80 by default) in a new browser tab, carried
// by the page's service worker over the lab network (ports.ts, public/port-proxy.js).

import { useEffect, useState } from "react";
import type { Hypervisor, VmEntry } from "../hypervisor.ts";
import { portUrl, portsReady } from "./ports.ts";

let ready: Promise<boolean> | undefined;

export function OpenPortMenu({ hv, e, disabled }: { hv: Hypervisor; e: VmEntry; disabled: boolean }) {
  const [open, setOpen] = useState(false);
  const [port, setPort] = useState("80");
  const [usable, setUsable] = useState<boolean | undefined>(undefined);
  useEffect(() => { let live = true; void (ready ??= portsReady()).then((ok) => { if (live) setUsable(ok); }); return () => { live = false; }; }, []);
  useEffect(() => setOpen(false), [e.id]);
  const n = Number(port);
  const valid = Number.isInteger(n) && n >= 1 && n <= 65535;
  const go = () => {
    if (!valid) return;
    setOpen(false);
    window.open(portUrl(e.spec.name, n), "_blank");
  };
  return (
    <span className="menu-anchor">
      <button data-testid="open-port" disabled={disabled || !hv.live(e) || !usable}
        title={usable === false ? "This browser gives the page no service worker, which Open port needs" : "Show what this VM serves on a TCP port (a web server) in a new tab"}
        onClick={() => setOpen(!open)}>Open port…</button>
      {open && (
        <div className="menu" role="menu" data-testid="open-port-menu">
          <form className="menu-form" onSubmit={(ev) => { ev.preventDefault(); go(); }}>
            <input data-testid="open-port-number" value={port} inputMode="numeric" aria-label="TCP port" onChange={(ev) => setPort(ev.currentTarget.value)} />
            <button type="submit" data-testid="open-port-go" disabled={!valid}>Open</button>
          </form>
          <div className="menu-note">A new tab shows http://{e.spec.name}:{valid ? n : "…"}/ as the lab network sees it.</div>
        </div>
      )}
    </span>
  );
}
