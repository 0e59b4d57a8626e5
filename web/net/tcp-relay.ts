// A TCP connection from a network's gateway to a VM, carried over a MessagePort: what the page's service worker uses
// to reach a VM's web server ("Open port", web/src/ports/). The switch worker runs the connection (the gateway is
// there, emulator-core/src/net/tcp.ts); the port's other end is the service worker itself (the page only hands the
// port over), so the bytes never pass through the page.
//
// Messages on the port (structured clone):
//   to the relay:    { t: "write", data: Uint8Array }   { t: "read", n }   { t: "end" }   { t: "abort" }
//   from the relay:  { t: "open" }   { t: "data", data: Uint8Array }   { t: "end" }   { t: "close", error?: string }
// "close" comes last, once; error is undefined after an orderly close ("connection refused", "timed out", ...).
// "read" says the other end has passed n bytes of "data" on: at most RECEIVE_BUFFER bytes are ever unread there,
// beyond that the connection's window closes and the VM waits (a reader that stops cannot make anything grow).

import type { Gateway } from "../../emulator-core/src/net/gateway.ts";
import { ipToString, parseIp } from "../../emulator-core/src/net/packet.ts";

export type RelayToVm = { t: "write"; data: Uint8Array } | { t: "read"; n: number } | { t: "end" } | { t: "abort" };

/** bytes sent on the port and not yet passed on by its reader */
export const RECEIVE_BUFFER = 1 << 20;
export type RelayFromVm = { t: "open" } | { t: "data"; data: Uint8Array } | { t: "end" } | { t: "close"; error?: string };

/** The VM's address on the gateway's network: a dotted quad, or a name its DNS knows (the VM's host name). */
export function resolveHost(gw: Gateway, host: string): number | undefined {
  if (/^\d+\.\d+\.\d+\.\d+$/.test(host)) return parseIp(host);
  return gw.resolve(host);
}

/** Connects `gw` to `host`:`tcpPort` and relays the connection over `port`; says why at once if it cannot. */
export function relayTcp(gw: Gateway | undefined, host: string, tcpPort: number, port: MessagePort): void {
  const say = (m: RelayFromVm) => { try { port.postMessage(m, m.t === "data" ? [m.data.buffer as ArrayBuffer] : []); } catch { /* closed */ } };
  const fail = (error: string) => { say({ t: "close", error }); port.close(); };
  if (!gw) return fail("this tab does not run the network's gateway (another tab does): open the port from there");
  if (!Number.isInteger(tcpPort) || tcpPort < 1 || tcpPort > 65535) return fail(`${tcpPort} is not a TCP port`);
  const ip = resolveHost(gw, host);
  if (ip === undefined) return fail(`${host} has no address on this network (no DHCP lease yet?)`);
  let conn;
  try {
    conn = gw.connectTcp(ip, tcpPort, {
      onOpen: () => say({ t: "open" }),
      onData: (data) => say({ t: "data", data }),
      onEnd: () => say({ t: "end" }),
      onClose: (error) => { say({ t: "close", error }); port.close(); },
    }, { receiveBuffer: RECEIVE_BUFFER });
  } catch (e) {
    return fail(`${host} (${ipToString(ip)}): ${(e as Error).message}`);
  }
  const c = conn;
  port.onmessage = (ev: MessageEvent<RelayToVm>) => {
    const m = ev.data;
    try {
      if (m?.t === "write" && m.data instanceof Uint8Array) c.write(m.data);
      else if (m?.t === "read" && typeof m.n === "number") c.consumed(m.n);
      else if (m?.t === "end") c.end();
      else if (m?.t === "abort") c.abort();
    } catch { c.abort(); }
  };
}
