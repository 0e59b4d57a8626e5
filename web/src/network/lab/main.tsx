// The network lab (web/network-lab.html): networks and VMs with network cards on one page, the NetworkPanel, and a
// plain console per VM. For trying the networks by hand before the dashboard mounts them, and for the browser
// tests, which drive it through window.tabvisorNet.
//
//   /web/network-lab.html                   empty; create networks and VMs with the forms
//   /web/network-lab.html?scenario=two      network "lan" with VMs alpha and beta
//   /web/network-lab.html?scenario=router   networks red and blue, hosts alpha (red) and gamma (blue), router r1

import { StrictMode, useEffect, useRef, useState, useSyncExternalStore } from "react";
import { createRoot } from "react-dom/client";
import { NetworkHub, type CardSpec, type CardInfo, type NetworkConfig, type SwitchSnapshot, type CaptureSummary, type LinkConfig } from "../../../net/hub.ts";
import { NetworkPanel } from "../NetworkPanel.tsx";
import { LabVm } from "./lab-vm.ts";
import { loadGuest, type GuestImages } from "../../images.ts";
import "../../styles.css";
import "./lab.css";

/** What tests (and the devtools console) reach: window.tabvisorNet. */
export interface NetLabHook {
  hub: NetworkHub;
  loaded(): Promise<void>;
  createNetwork(cfg: NetworkConfig): void;
  /** creates and starts a VM with these cards (eth0, eth1, ...); `append` goes on the kernel command line */
  startVm(name: string, cards: CardSpec[], append?: string): Promise<void>;
  /** waits for the guest's ready marker and then its shell prompt */
  waitReady(name: string, timeoutMs?: number): Promise<void>;
  command(name: string, cmd: string, timeoutMs?: number): Promise<{ output: string; status: number }>;
  send(name: string, text: string): void;
  /** waits for `pattern` in the console after position `from` (default: now) */
  waitFor(name: string, pattern: string, timeoutMs?: number, from?: number): Promise<string>;
  mark(name: string): number;
  text(name: string): string;
  removeVm(name: string): void;
  cards(): CardInfo[];
  setLink(cardId: string, cfg: Partial<LinkConfig>): Promise<void>;
  plug(cardId: string, network: string | null): Promise<void>;
  snapshot(network: string): Promise<SwitchSnapshot | undefined>;
  capture(network: string): Promise<CaptureSummary[]>;
  /** the network's capture as a .pcap file, base64 */
  pcapBase64(network: string): Promise<string>;
}
declare global {
  interface Window { tabvisorNet?: NetLabHook }
}

// The guest images are under images/ next to index.html, one level up from this page (loadGuest resolves them
// against the document's base URL). Set here rather than in the HTML, so the built page's own script and style
// URLs (relative to the page) are not affected.
{
  const base = document.createElement("base");
  base.href = new URL("../", location.href).href;
  document.head.prepend(base);
}

class Lab {
  readonly hub = new NetworkHub();
  readonly vms = new Map<string, LabVm>();
  private guest: Promise<{ hart: WebAssembly.Module; images: GuestImages }> | undefined;
  private readonly listeners = new Set<() => void>();
  version = 0;

  load() { return (this.guest ??= loadGuest()); }

  subscribe = (fn: () => void) => { this.listeners.add(fn); return () => { this.listeners.delete(fn); }; };
  getVersion = () => this.version;
  private changed() { this.version++; for (const fn of this.listeners) fn(); }

  async startVm(name: string, cards: CardSpec[], append?: string): Promise<void> {
    if (!/^[a-z0-9][a-z0-9-]{0,30}$/.test(name)) throw new Error(`bad VM name "${name}" (lower-case letters, digits, -)`);
    if (this.vms.has(name)) throw new Error(`VM ${name} exists`);
    const { hart, images } = await this.load();
    const vm = new LabVm({ name, hart, images, hub: this.hub, cards, append });
    this.vms.set(name, vm);
    this.changed();
    await vm.start();
  }

  vm(name: string): LabVm {
    const vm = this.vms.get(name);
    if (!vm) throw new Error(`no VM ${name}`);
    return vm;
  }

  removeVm(name: string): void {
    this.vms.get(name)?.dispose(this.hub);
    this.vms.delete(name);
    this.changed();
  }
}

const lab = new Lab();

function toBase64(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(s);
}

window.tabvisorNet = {
  hub: lab.hub,
  loaded: async () => { await lab.load(); },
  createNetwork: (cfg) => lab.hub.createNetwork(cfg),
  startVm: (name, cards, append) => lab.startVm(name, cards, append),
  async waitReady(name, timeoutMs = 60_000) {
    const vm = lab.vm(name);
    await vm.waitFor(/@@GUEST_READY@@/, timeoutMs, 0);
    await vm.waitFor(/[#$] $/, timeoutMs, 0);
  },
  command: (name, cmd, timeoutMs) => lab.vm(name).command(cmd, timeoutMs),
  send: (name, text) => lab.vm(name).send(text),
  waitFor: (name, pattern, timeoutMs, from) => lab.vm(name).waitFor(new RegExp(pattern, "m"), timeoutMs, from),
  mark: (name) => lab.vm(name).mark,
  text: (name) => lab.vm(name).text,
  removeVm: (name) => lab.removeVm(name),
  cards: () => lab.hub.cards(),
  setLink: (id, cfg) => lab.hub.setLink(id, cfg),
  plug: (id, net) => lab.hub.plug(id, net),
  async snapshot(network) { await lab.hub.poll(); return lab.hub.getState().networks.find((n) => n.name === network)?.snapshot; },
  capture: (network) => lab.hub.refreshCapture(network),
  async pcapBase64(network) { return toBase64(await lab.hub.pcap(network)); },
};

function scenario(name: string | null): void {
  if (name === "two") {
    lab.hub.createNetwork({ name: "lan", gateway: "10.0.1.1/24" });
    void lab.startVm("alpha", [{ network: "lan" }]);
    void lab.startVm("beta", [{ network: "lan" }]);
  } else if (name === "router") {
    lab.hub.createNetwork({ name: "red", gateway: "10.0.1.1/24" });
    lab.hub.createNetwork({ name: "blue", gateway: "10.0.2.1/24" });
    void lab.startVm("alpha", [{ network: "red" }]);
    void lab.startVm("r1", [{ network: "red" }, { network: "blue" }], "tabvisor.ip=10.0.1.254/24");
    void lab.startVm("gamma", [{ network: "blue" }]);
  }
}


function VmConsole({ vm }: { vm: LabVm }) {
  const [, setTick] = useState(0);
  const [line, setLine] = useState("");
  const pre = useRef<HTMLPreElement>(null);
  useEffect(() => {
    let t: ReturnType<typeof setTimeout> | undefined;
    const off = vm.onChange(() => { t ??= setTimeout(() => { t = undefined; setTick((n) => n + 1); }, 100); });
    return () => { off(); if (t) clearTimeout(t); };
  }, [vm]);
  useEffect(() => { if (pre.current) pre.current.scrollTop = pre.current.scrollHeight; });
  return (
    <div className="lab-vm" data-testid={`lab-vm-${vm.name}`}>
      <div className="lab-vm-bar">
        <strong>{vm.name}</strong> <span className={`lab-state lab-state-${vm.state}`} data-state={vm.state}>{vm.state}</span>
        <button onClick={() => void vm.reset()}>Reset</button>
        <button onClick={() => lab.removeVm(vm.name)}>Remove</button>
      </div>
      <pre ref={pre} className="lab-console">{vm.text.slice(-6000)}</pre>
      <form onSubmit={(e) => { e.preventDefault(); vm.send(line + "\n"); setLine(""); }}>
        <input className="lab-input" value={line} onChange={(e) => setLine(e.target.value)} placeholder={`command for ${vm.name}, then Enter`}
          onKeyDown={(e) => { if (e.ctrlKey && e.key === "c") { vm.send("\x03"); e.preventDefault(); } }} />
      </form>
    </div>
  );
}

function NewVm() {
  const [name, setName] = useState("");
  const [nets, setNets] = useState("");
  const [error, setError] = useState<string>();
  const start = () => {
    setError(undefined);
    const cards = nets.split(",").map((s) => s.trim()).filter(Boolean).map((n) => ({ network: n === "-" ? null : n }));
    lab.startVm(name.trim() || `vm${lab.vms.size + 1}`, cards).catch((e: Error) => setError(e.message));
    setName("");
  };
  return (
    <form className="lab-new" onSubmit={(e) => { e.preventDefault(); start(); }}>
      <strong>New VM</strong>
      <input placeholder={`vm${lab.vms.size + 1}`} value={name} onChange={(e) => setName(e.target.value)} aria-label="VM name" />
      <input placeholder="networks of eth0, eth1, … (comma-separated)" value={nets} onChange={(e) => setNets(e.target.value)} aria-label="networks" />
      <button type="submit">Start</button>
      {error && <span className="net-error">{error}</span>}
    </form>
  );
}

function LabApp() {
  useSyncExternalStore(lab.subscribe, lab.getVersion);
  const [problem, setProblem] = useState<string>();
  useEffect(() => { lab.load().catch((e: Error) => setProblem(e.message)); }, []);
  return (
    <div className="lab">
      <header className="lab-bar"><strong>Tabvisor</strong><span className="net-muted">network lab</span></header>
      {problem && <div className="net-error" data-testid="problem">{problem}</div>}
      <NetworkPanel hub={lab.hub} />
      <NewVm />
      <div className="lab-vms">
        {[...lab.vms.values()].map((vm) => <VmConsole key={vm.name} vm={vm} />)}
      </div>
    </div>
  );
}

scenario(new URLSearchParams(location.search).get("scenario"));
if (!crossOriginIsolated) {
  document.getElementById("root")!.textContent = "This page needs cross-origin isolation (SharedArrayBuffer): serve it with npm start.";
} else {
  createRoot(document.getElementById("root")!).render(<StrictMode><LabApp /></StrictMode>);
}
