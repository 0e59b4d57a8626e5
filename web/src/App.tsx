// The page: downloads the emulator core and the guest images once, then runs the lab (the VMs) in the dashboard.
// The lab is the one in the address (?lab=name[:MiB],...), else the one saved by the last visit, else the sample
// lab (web1, web2, db1), which boots by itself on a first visit.

import { NetworkHub } from "./network/index.ts";
import { Component, useEffect, useRef, useState, type ReactNode } from "react";
import { Dashboard, type DashboardUi } from "./Dashboard.tsx";
import { Hypervisor, type UiState, type HostSummary, type NetworkAttach } from "./hypervisor.ts";
import { prepareVmWorker, type VmHandle } from "./vm-handle.ts";
import { loadGuest, DownloadError, type LoadProgress } from "./images.ts";
import { warmCompiler } from "./jit-compiler.ts";
import type { EnvironmentProblem } from "./environment.ts";
import type { VmStats } from "../shared/protocol.ts";
import type { Sample } from "./meters.ts";
import { DEFAULT_NETWORK, labFromUrl, labSshKey, loadSavedLab, loadSavedNetworks, saveNetworks, SAMPLE_LAB, checkSpec, probeMemory, newSpec, type VmSpec } from "./lab.ts";
import { Snapshots } from "./snapshots/snapshots.ts";
import { Autosave } from "./snapshots/autosave.ts";
import { HostTabs, holdLock, type LocksLike } from "./tabs/host-tabs.ts";
import { Migrations, type MigrationNetwork } from "./tabs/migrations.ts";
import { Transfers } from "./files/transfers.ts";
import { servePorts } from "./ports/ports.ts";
import { hasLabLink } from "./labs/share.ts";
import { PageLabs } from "./lab-run/page-labs.ts";
import { PageLabHost } from "./lab-run/page-host.ts";
import { LabShell, LabButtons } from "./lab-run/LabShell.tsx";

/** What tests and the browser's devtools console can reach: window.tabvisor. The first group is about the
 *  selected VM (the one whose console and toolbar are shown). */
export interface TabvisorHook {
  vm?: VmHandle;
  state(): UiState | "loading" | "failed";
  /** the selected VM's terminal text (scrollback and screen) */
  text(): string;
  stats(): Promise<VmStats | undefined>;
  hv?: Hypervisor;
  vms(): string[];
  select(name: string): void;
  selected(): string | undefined;
  textOf(name: string): string;
  stateOf(name: string): UiState | undefined;
  readyOf(name: string): boolean;
  handleOf(name: string): VmHandle | undefined;
  /** the VM's latest meter sample */
  meters(name: string): Sample | undefined;
  host(): HostSummary | undefined;
  /** creates a VM through the same checks as the New VM dialog; resolves with the refusal, or undefined */
  create(spec: Partial<VmSpec> & { name: string }, start?: boolean): string | undefined;
  /** ms from typing one character into the VM's console to its echo reaching the page (the character is erased) */
  echoLatency(name: string): Promise<number>;
  /** the snapshots (list, take, restore, fork, open) and the autosave of the lab (a saved lab only) */
  snapshots?: Snapshots;
  autosave?: Autosave;
  /** live migration to the browser's other tabs of this page (where the browser has Web Locks) */
  migrations?: Migrations;
  /** the open lab (its file, build and checks) */
  labs?: PageLabs;
}
declare global {
  interface Window { tabvisor?: TabvisorHook }
}


interface Lab { hv?: Hypervisor; hub?: NetworkHub; snaps?: Snapshots; autosave?: Autosave; migrations?: Migrations; transfers?: Transfers; secondHost?: boolean; labs?: PageLabs }

/** The saved lab belongs to one tab at a time: a further tab opened on it starts empty, as another host of the
 *  first tab's lab (VMs can be migrated to it, or made there; they are not saved). */
const LAB_LOCK = "tabvisor-saved-lab";
/** a reloading tab lets the lock go a moment after the new page asks for it */
const LAB_LOCK_WAIT_MS = 1000;

/** This tab's number among the page's open tabs: the page's, not a React mount's (taken once, given back when the
 *  page goes away). */
let hostTabs: Promise<HostTabs | undefined> | undefined;
function openHostTabs(): Promise<HostTabs | undefined> {
  if (!hostTabs) {
    hostTabs = HostTabs.open().catch(() => undefined);
    void hostTabs.then((t) => { if (t) addEventListener("pagehide", () => t.dispose(), { once: true }); });
  }
  return hostTabs;
}

function useHypervisor(onProgress: (p: LoadProgress) => void, onProblem: (p: EnvironmentProblem) => void): Lab {
  const [lab, setLab] = useState<Lab>({});
  useEffect(() => {
    let made: Hypervisor | undefined;
    let madeHub: NetworkHub | undefined;
    let madeAutosave: Autosave | undefined;
    let madeMigrations: Migrations | undefined;
    let stopPorts: (() => void) | undefined;
    let onHash: (() => void) | undefined;
    let stopSaving: (() => void) | undefined;
    let labLock: { release(): void } | undefined;
    let cancelled = false;
    (async () => {
      // a VM worker starts loading while the images do (the first VM takes it); not where VMs cannot run
      if (globalThis.crossOriginIsolated) prepareVmWorker();
      // a lab file in the address's fragment (a share link): this tab's own, as a lab in the address is
      const fromLink = hasLabLink(location.hash);
      const fromUrl = labFromUrl(location.search) ?? (fromLink ? [] : undefined);
      const locks = (navigator as { locks?: LocksLike }).locks;
      // a lab in the address is this tab's own; the saved one goes to the first tab that asks
      labLock = !fromUrl && locks ? await holdLock(locks, LAB_LOCK, LAB_LOCK_WAIT_MS) : undefined;
      // (React runs this effect twice in development: the first run's cleanup has come by now, so what it took
      // goes back at once)
      if (cancelled) { labLock?.release(); return; }
      const secondHost = !fromUrl && !!locks && !labLock;
      const [guest, saved, tabs, sshKey, savedNets] = await Promise.all([
        loadGuest(onProgress), fromUrl || secondHost ? undefined : loadSavedLab(), openHostTabs(), labSshKey(!fromUrl),
        fromUrl || secondHost ? undefined : loadSavedNetworks(),
      ]);
      if (cancelled) { labLock?.release(); return; }
      // the JIT's compiler thread warms up while the page waits for its first VM (a VM's first region ends it)
      if (globalThis.crossOriginIsolated) warmCompiler(guest.hart, guest.images.kernel);
      const net = new NetworkHub();
      // the saved lab's networks as the last visit left them (a lab's own networks among them), else the default one
      for (const cfg of savedNets?.length ? savedNets : [DEFAULT_NETWORK]) {
        try { net.createNetwork(cfg); } catch (e) { console.warn(`the saved network ${cfg.name} was not made again: ${(e as Error).message}`); }
      }
      madeHub = net;
      // the page's networks as the hypervisor and the migrations see them
      const network: NetworkAttach & MigrationNetwork = {
        // the first card on the lab's network unless told otherwise, further ones unplugged
        nicsFor: (vm, cards) => (ctrl) => net.attachVm(vm, cards.map((c, i) => ({
          mac: c.mac, network: c.network === undefined ? (i === 0 ? DEFAULT_NETWORK.name : null) : c.network,
        }))).nics(ctrl),
        release: (vm) => net.detachVm(vm),
        cardsOf: (vm) => net.getState().cards.filter((c) => c.vm === vm).map((c) => ({ mac: c.mac, network: c.network })),
        macsInUse: () => net.getState().cards.map((c) => c.mac),
        networkNames: () => net.networkNames(),
        configOf: (name) => net.getState().networks.find((n) => n.name === name)?.config,
        ensure: (cfg) => { if (!net.networkNames().includes(cfg.name)) net.createNetwork(cfg); },
      };
      // the saved lab's VMs keep their disks in the browser's storage (a lab in the address, or a second host's VMs,
      // are not kept: nor are their disks); ?diskQuotaMiB=N caps each disk's overlay (a quota to test against);
      // ?consoleBacklogKiB=N bounds what each VM's worker keeps of the console output a hidden page does not take
      // (a small bound lets a test see the "output skipped" mark without minutes of output)
      const quotaMiB = Number(new URLSearchParams(location.search).get("diskQuotaMiB") ?? NaN);
      const backlogKiB = Number(new URLSearchParams(location.search).get("consoleBacklogKiB") ?? NaN);
      made = new Hypervisor(guest, {
        persist: !fromUrl && !secondHost, network, persistDisks: !fromUrl && !secondHost,
        diskQuotaBytes: Number.isFinite(quotaMiB) && quotaMiB >= 0 ? quotaMiB * 1048576 : undefined, sshKey,
        consoleBacklogBytes: Number.isFinite(backlogKiB) && backlogKiB >= 0 ? backlogKiB * 1024 : undefined,
      });
      for (const spec of secondHost ? [] : fromUrl ?? saved ?? SAMPLE_LAB) made.create(spec, true, { keepDisk: true });
      void made.dropOrphanDisks();
      const snaps = new Snapshots(made);
      // a lab given in the address is not saved, nor autosaved, nor is a second host's
      if (!fromUrl && !secondHost) {
        madeAutosave = new Autosave(made, snaps);
        void madeAutosave.start().then(() => snaps.changed());
      }
      const migrations = madeMigrations = tabs && new Migrations(made, tabs, network, { say: (kind, text) => snaps.say(kind, text) });
      if (secondHost) snaps.say("info", `The saved lab is open in another tab: ${tabs?.self.name ?? "this tab"} starts empty, as another host (migrate VMs here, or make new ones: they are not saved).`);
      const transfers = new Transfers(made, (kind, text) => snaps.say(kind, text));
      const lab = made;
      stopPorts = servePorts(net, (name) => lab.entries.some((e) => e.spec.name === name));
      const persisted = !fromUrl && !secondHost;
      if (persisted) {
        // networks and cards change without the VMs changing (made, removed, plugged in the Networks view, a lab):
        // saved when they did
        let lastNets = "";
        stopSaving = net.subscribe(() => {
          const configs = net.getState().networks.map((n) => n.config);
          const text = JSON.stringify(configs);
          if (text !== lastNets) { lastNets = text; void saveNetworks(configs); }
          made!.save();
        });
      }
      const labs = new PageLabs(new PageLabHost(made, net), {
        type: (vm, text) => { const e = lab.byName(vm); if (!e) return; window.tabvisor?.select(vm); e.handle.sendInput(text); },
      }, persisted);
      if (fromLink) labs.openLink(location.hash);
      else void labs.restore();
      // a lab link pasted into this tab's address
      onHash = () => { if (hasLabLink(location.hash)) labs.openLink(location.hash); };
      addEventListener("hashchange", onHash);
      setLab({ hv: made, hub: net, snaps, autosave: madeAutosave, migrations, transfers, secondHost, labs });
    })().catch((e: unknown) => {
      if (cancelled) return;
      if (e instanceof DownloadError) onProblem({ title: "The guest images could not be downloaded", detail: e.message, fix: e.fix });
      else onProblem({ title: "The VMs could not be set up", detail: String((e as Error)?.message ?? e), fix: "Reload the page; if it keeps failing, see the browser's console." });
    });
    return () => {
      cancelled = true;
      if (onHash) removeEventListener("hashchange", onHash);
      stopSaving?.();
      stopPorts?.(); madeMigrations?.dispose(); madeAutosave?.dispose(); made?.dispose(); madeHub?.dispose(); labLock?.release();
    };
  }, []);
  return lab;
}

export function App() {
  const [progress, setProgress] = useState<LoadProgress>();
  const [problem, setProblem] = useState<EnvironmentProblem>();
  const { hv, hub, snaps, autosave, migrations, transfers, labs } = useHypervisor(setProgress, setProblem);
  const ui = useRef<DashboardUi | undefined>(undefined);

  useEffect(() => {
    const sel = () => (hv ? hv.byId(ui.current?.selected ?? -1) ?? hv.entries[0] : undefined);
    const entry = (name: string) => hv?.byName(name);
    window.tabvisor = {
      get vm() { return sel()?.handle; },
      state: () => (problem ? "failed" : !hv ? "loading" : sel()?.state ?? "stopped"),
      text: () => sel()?.console.text() ?? "",
      stats: async () => sel()?.handle.stats(),
      hv,
      vms: () => hv?.entries.map((e) => e.spec.name) ?? [],
      select: (name) => { const e = entry(name); if (e) ui.current?.select(e.id); },
      selected: () => sel()?.spec.name,
      textOf: (name) => entry(name)?.console.text() ?? "",
      stateOf: (name) => entry(name)?.state,
      readyOf: (name) => entry(name)?.ready ?? false,
      handleOf: (name) => entry(name)?.handle,
      meters: (name) => entry(name)?.history.last,
      host: () => hv?.host(),
      create: (over, start = true) => {
        if (!hv) return "not ready";
        const spec = newSpec(over.name, over);
        const why = checkSpec(spec, hv.entries.map((e) => e.spec.name)) ?? probeMemory(spec.ramMiB);
        if (why) return why;
        hv.create(spec, start);
        return undefined;
      },
      echoLatency: (name) => new Promise((resolve, reject) => {
        const e = entry(name);
        if (!e) { reject(new Error(`no VM ${name}`)); return; }
        const t0 = performance.now();
        const timer = setTimeout(() => { e.console.onOutput = undefined; reject(new Error(`${name}: no echo within 10 s`)); }, 10_000);
        e.console.onOutput = (bytes) => {
          if (!bytes.includes(0x25)) return; // "%"
          clearTimeout(timer);
          e.console.onOutput = undefined;
          resolve(performance.now() - t0);
          e.handle.sendInput("\x7f"); // erase it again
        };
        e.handle.sendInput("%");
      }),
      snapshots: snaps,
      autosave,
      migrations,
      labs,
    };
  }, [hv, problem, snaps, autosave, migrations, labs]);

  if (problem) return <ProblemView problem={problem} />;
  if (!hv) return <LoadingView progress={progress} />;
  const dashboard = <Dashboard hv={hv} hub={hub} snaps={snaps} autosave={autosave} migrations={migrations} transfers={transfers} onUi={(u) => { ui.current = u; }}
    actions={labs && <LabButtons labs={labs} />} />;
  return <Guard>{labs ? <LabShell labs={labs} debian={hv.debian}>{dashboard}</LabShell> : dashboard}</Guard>;
}

/** A bug in the dashboard shows what happened instead of an empty page (the VMs keep running in their workers). */
class Guard extends Component<{ children: ReactNode }, { error?: Error }> {
  state: { error?: Error } = {};
  static getDerivedStateFromError(error: Error) { return { error }; }
  render() {
    const e = this.state.error;
    if (!e) return this.props.children;
    return <ProblemView problem={{
      title: "The dashboard failed",
      detail: `${e.message}`,
      fix: "Reload the page (the lab is kept); if it happens again, the browser's console has the details.",
    }} />;
  }
}

function LoadingView({ progress }: { progress?: LoadProgress }) {
  const pct = progress && progress.total > 0 ? (100 * progress.loaded) / progress.total : 0;
  return (
    <div className="loading" data-testid="loading">
      <div className="loading-title">Tabvisor</div>
      <div>Downloading the guest images{progress ? ` (${progress.file})` : ""}…</div>
      <progress max={100} value={pct} />
      <div className="loading-bytes">
        {progress ? `${(progress.loaded / 1048576).toFixed(1)} of ${(progress.total / 1048576).toFixed(1)} MiB` : ""}
      </div>
    </div>
  );
}

export function ProblemView({ problem }: { problem: EnvironmentProblem }) {
  return (
    <div className="problem" role="alert" data-testid="problem">
      <h1>{problem.title}</h1>
      <p>{problem.detail}</p>
      <p><strong>How to fix it:</strong> {problem.fix}</p>
    </div>
  );
}
