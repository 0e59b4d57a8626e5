// The dashboard's side of "Open port" (public/port-proxy.js is the service worker's): when the service worker asks
// for a connection to a VM's port, the dashboard hands the request's MessagePort to the switch worker of the VM's
// network, whose gateway opens the TCP connection (web/net/tcp-relay.ts). From then on the service worker and the
// switch worker talk directly; the page does nothing per byte.

import type { NetworkHub } from "../../net/hub.ts";

/** Where a VM's port is shown: a path of this site that the service worker (scope "/", as index.html registers it)
 *  carries to the VM. */
export function portUrl(vm: string, port: number, path = "/"): string {
  return `/port/${encodeURIComponent(vm)}/${port}${path}`;
}

/** Whether the page has a service worker to carry a port (it registers in index.html: public/coi-serviceworker.js). */
export function portsReady(): Promise<boolean> {
  if (typeof navigator === "undefined" || !("serviceWorker" in navigator)) return Promise.resolve(false);
  return Promise.race([
    navigator.serviceWorker.ready.then(() => true, () => false),
    new Promise<boolean>((r) => setTimeout(() => r(false), 10_000)),
  ]);
}

interface OpenPortRequest { t: "tabvisor-open-port"; vm: string; port: number }

/** Answers the service worker's requests for VM ports with this page's networks; returns the way to stop. */
export function servePorts(hub: NetworkHub, hasVm: (name: string) => boolean): () => void {
  if (typeof navigator === "undefined" || !("serviceWorker" in navigator)) return () => {};
  const sw = navigator.serviceWorker;
  const onMessage = (ev: MessageEvent) => {
    const m = ev.data as OpenPortRequest | undefined;
    const port = ev.ports[0];
    if (m?.t !== "tabvisor-open-port" || !port) return;
    if (typeof m.vm !== "string" || !hasVm(m.vm)) { port.postMessage({ t: "no-vm" }); port.close(); return; }
    hub.connectTcp(m.vm, Number(m.port), port).then(
      (why) => { if (why) { port.postMessage({ t: "close", error: why }); port.close(); } },
      (e: unknown) => { try { port.postMessage({ t: "close", error: (e as Error)?.message ?? String(e) }); } catch { /* moved */ } },
    );
  };
  sw.addEventListener("message", onMessage);
  sw.startMessages();
  return () => sw.removeEventListener("message", onMessage);
}
