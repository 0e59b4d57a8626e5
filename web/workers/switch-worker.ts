// One virtual network in its own Web Worker: its switch, gateway and capture (web/net/switch-host.ts), fed by the
// cards' shared-memory rings. The page (web/net/hub.ts) controls it through comlink; frames never pass through
// the page. A flood on this network keeps this worker busy, not the page or the other networks' workers.

import * as Comlink from "comlink";
import { SwitchHost, type NetworkConfig, type PortPlug, type SwitchSnapshot } from "../net/switch-host.ts";
import type { LinkConfig } from "../../emulator-core/src/net/link.ts";
import type { CaptureSummary } from "../../emulator-core/src/net/pcap.ts";

export interface SwitchWorkerApi {
  init(cfg: NetworkConfig): void;
  plug(p: PortPlug): number;
  unplug(cardId: string): boolean;
  setLink(cardId: string, cfg: Partial<LinkConfig>): void;
  snapshot(): SwitchSnapshot;
  captureSince(sinceSeq: number, max?: number): CaptureSummary[];
  /** the capture as a libpcap file (the buffer is transferred) */
  pcap(): Uint8Array;
  clearCapture(): void;
  setCapture(enabled: boolean): void;
  /** a TCP connection from the gateway to a VM, relayed over `port` (web/net/tcp-relay.ts; transfer the port) */
  connectTcp(host: string, tcpPort: number, port: MessagePort): void;
  close(): void;
}

let host: SwitchHost | undefined;
const need = (): SwitchHost => {
  if (!host) throw new Error("the switch worker is not initialised");
  return host;
};

const api: SwitchWorkerApi = {
  init(cfg) {
    if (host) throw new Error("the switch worker is already initialised");
    host = new SwitchHost(cfg);
  },
  plug: (p) => need().plug(p),
  unplug: (id) => need().unplug(id),
  setLink: (id, cfg) => need().setLink(id, cfg),
  snapshot: () => need().snapshot(),
  captureSince: (since, max) => need().captureSince(since, max),
  pcap() {
    const bytes = need().pcap();
    return Comlink.transfer(bytes, [bytes.buffer as ArrayBuffer]);
  },
  clearCapture: () => need().clearCapture(),
  setCapture: (on) => need().setCapture(on),
  connectTcp: (host, tcpPort, port) => need().connectTcp(host, tcpPort, port),
  close() { host?.close(); },
};

Comlink.expose(api);
