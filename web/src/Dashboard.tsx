// The dashboard: the host summary and every VM as a card (left), consoles in tabs or side by side (centre), and the
// selected VM's meters and resource controls (right). The Networks and Snapshots views take the centre's place
// while shown; notices and the offer to resume the last visit's VMs float in a corner. A snapshot file dropped
// anywhere on the page becomes a VM.

import { NetworkPanel, type NetworkHub } from "./network/index.ts";
import { memo, useEffect, useRef, useState, useSyncExternalStore, type ReactNode } from "react";
import type { Hypervisor, VmEntry, UiState } from "./hypervisor.ts";
import { Chart } from "./Chart.tsx";
import { CreateVmDialog } from "./CreateVm.tsx";
import { SnapshotsView, Notices, useSnapshots } from "./snapshots/SnapshotsView.tsx";
import type { Snapshots } from "./snapshots/snapshots.ts";
import type { Autosave } from "./snapshots/autosave.ts";
import { HISTORY_SECONDS, fmtBytes, fmtMips, fmtPct, fmtUptimeCoarse, useDrawn, useLiveFields } from "./meters.ts";
import { maxBalloonMiB, BALLOON_FLOOR_MIB, SAMPLE_LAB } from "./lab.ts";
import { jitFields, jitHint } from "./jit-meter.ts";
import type { Migrations } from "./tabs/migrations.ts";
import type { Transfers } from "./files/transfers.ts";
import { FilesMenu } from "./files/FilesMenu.tsx";
import { DiskMenu, DiskLine, StorageRow } from "./storage/DiskMenu.tsx";
import { OpenPortMenu } from "./ports/OpenPortMenu.tsx";
import { fileDrop } from "./files/drop.ts";

const CPU_COLOR = "#3fb950";
const CAP_COLOR = "#d29922";
const MIPS_COLOR = "#58a6ff";
const MEM_COLOR = "#bc8cff";
const AVAIL_COLOR = "#7d8a97";
const BALLOON_COLOR = "#f0883e";
const READ_COLOR = "#39c5cf";
const WRITE_COLOR = "#f778ba";
const COMPILE_COLOR = "#d29922";
const COMPILED_COLOR = "#58a6ff";

/** Re-renders the caller when VMs, their states or their settings change. */
const useStructure = (hv: Hypervisor) => useSyncExternalStore(hv.subscribe, hv.getStructVersion);

export interface DashboardUi {
  selected: number | undefined;
  select(id: number): void;
}

export function Dashboard({ hv, hub, snaps, autosave, migrations, transfers, onUi, actions }: {
  hv: Hypervisor; hub?: NetworkHub; snaps?: Snapshots; autosave?: Autosave; migrations?: Migrations; transfers?: Transfers; onUi?: (ui: DashboardUi) => void;
  /** more toolbar buttons (the labs') */
  actions?: ReactNode;
}) {
  const [view, setView] = useState<"consoles" | "networks" | "snapshots">("consoles");
  const showNetworks = view === "networks";
  const [dropping, setDropping] = useState(false);
  useStructure(hv);
  const entries = hv.entries;
  const [selected, setSelected] = useState<number | undefined>(entries[0]?.id);
  const [split, setSplit] = useState(false);
  const [splitIds, setSplitIds] = useState<number[]>([]);
  const [creating, setCreating] = useState(false);
  // the meters panel: shown beside a single console on a wide window; hidden in the split view unless asked for
  const [metersSingle, setMetersSingle] = useState(() => window.innerWidth >= 1000);
  const [metersSplit, setMetersSplit] = useState(false);
  const showMeters = split ? metersSplit : metersSingle;
  const setShowMeters = split ? setMetersSplit : setMetersSingle;

  // the selection follows deletions; a lab that starts empty selects its first VM when one appears
  const sel = entries.find((e) => e.id === selected) ?? entries[0];
  useEffect(() => { if (sel && sel.id !== selected) setSelected(sel.id); }, [sel?.id, selected]);

  const select = (id: number) => {
    setSelected(id);
    if (split && !splitIds.includes(id)) setSplitIds((ids) => [...ids, id]);
  };
  useEffect(() => { onUi?.({ selected: sel?.id, select }); });

  const shownInSplit = entries.filter((e) => splitIds.includes(e.id));
  const visible = (e: VmEntry) => (split ? shownInSplit.some((x) => x.id === e.id) : e.id === sel?.id);

  const toggleSplit = () => {
    if (!split) {
      const ids = entries.slice(0, 4).map((e) => e.id);
      if (sel && !ids.includes(sel.id)) ids[ids.length - 1] = sel.id;
      setSplitIds(ids);
    }
    setSplit(!split);
  };

  const host = hv.host();
  const hasFiles = (ev: React.DragEvent) => Array.from(ev.dataTransfer?.types ?? []).includes("Files");
  const drop = async (ev: React.DragEvent) => {
    if (!snaps || !hasFiles(ev)) return;
    ev.preventDefault();
    setDropping(false);
    for (const f of Array.from(ev.dataTransfer.files)) {
      const e = await snaps.openFile(f);
      if (e) { setView("consoles"); select(e.id); }
    }
  };
  return (
    <div className="dash" data-testid="dashboard"
      onDragOver={(ev) => { if (snaps && hasFiles(ev)) { ev.preventDefault(); ev.dataTransfer.dropEffect = "copy"; setDropping(true); } }}
      onDragLeave={(ev) => { if (ev.currentTarget === ev.target || !ev.relatedTarget) setDropping(false); }}
      onDrop={(ev) => void drop(ev)}>
      <header className="topbar">
        <div className="brand">
          <span className="logo" aria-hidden>▣</span>
          <span className="title">Tabvisor</span>
          <span className="subtitle">RISC-V Linux VMs in this tab</span>
          {migrations && <span className="tab-name" data-testid="tab-name" title="This tab's name as a host: VMs can be migrated between the page's tabs">{migrations.tabs.self.name}</span>}
        </div>
        <div className="top-actions">
          <button className="primary" data-testid="new-vm" onClick={() => setCreating(true)}>New VM</button>
          <button data-testid="start-all" disabled={entries.length === 0} onClick={() => void hv.startAll()}>Start all</button>
          <button data-testid="stop-all" disabled={host.running === 0 && !entries.some((e) => e.state === "paused")} onClick={() => void hv.stopAll()}>Stop all</button>
          {hub && (
            <button className={showNetworks ? "on" : ""} data-testid="show-networks" onClick={() => setView(showNetworks ? "consoles" : "networks")}>
              {showNetworks ? "Consoles" : "Networks"}
            </button>
          )}
          {snaps && (
            <button className={view === "snapshots" ? "on" : ""} data-testid="show-snapshots" onClick={() => setView(view === "snapshots" ? "consoles" : "snapshots")}>
              {view === "snapshots" ? "Consoles" : "Snapshots"}
            </button>
          )}
          {actions}
        </div>
      </header>
      {snaps && <Notices snaps={snaps} autosave={autosave} />}
      {dropping && <div className="drop-hint" data-testid="drop-hint">Drop a snapshot file (.tvsnap) to start a VM from it</div>}

      <aside className="sidebar">
        <HostPanel hv={hv} />
        <div className="cards" data-testid="vm-list">
          {entries.map((e) => (
            <VmCard key={e.id} hv={hv} e={e} selected={e.id === sel?.id} onSelect={() => select(e.id)} />
          ))}
        </div>
      </aside>

      {/* The network view replaces the consoles while shown; the consoles stay mounted (hidden) so their
          terminals keep their state. */}
      {hub && showNetworks && <section className="main networks-view" data-testid="networks-view"><NetworkPanel hub={hub} /></section>}
      {snaps && view === "snapshots" && (
        <section className="main snapshots-view" data-testid="snapshots-view">
          <SnapshotsView snaps={snaps} onOpened={(id) => { setView("consoles"); select(id); }} />
        </section>
      )}
      <main className="main" style={{ display: view !== "consoles" ? "none" : undefined }}>
        {entries.length === 0 ? (
          <EmptyLab onCreate={() => setCreating(true)} onSample={() => { for (const s of SAMPLE_LAB) hv.create(s); }} />
        ) : (
          <>
            <nav className="tabs" role="tablist">
              {entries.map((e) => (
                <button
                  key={e.id} role="tab" aria-selected={e.id === sel?.id} data-testid="tab" data-vm={e.spec.name}
                  data-unread={e.console.unread ? "1" : "0"}
                  className={`tab ${e.id === sel?.id ? "active" : ""} ${split && splitIds.includes(e.id) ? "in-split" : ""}`}
                  onClick={() => { select(e.id); requestAnimationFrame(() => e.console.focus()); }}
                  {...fileDrop(transfers && ((files) => { for (const f of files) void transfers.upload(e, f); }))}
                >
                  <span className={`dot dot-${e.state}`} />
                  {e.spec.name}
                  {e.console.unread && <span className="badge" data-testid="tab-badge" title="new console output">●</span>}
                </button>
              ))}
              <span className="tabs-fill" />
              <button className={`split-toggle ${split ? "on" : ""}`} data-testid="split-toggle" title="Show several consoles side by side" onClick={toggleSplit}>
                {split ? "Single console" : "Split view"}
              </button>
            </nav>
            {sel && <Toolbar hv={hv} e={sel} snaps={snaps} migrations={migrations} transfers={transfers} onSelect={select} showMeters={showMeters} onToggleMeters={() => setShowMeters(!showMeters)} />}
            <div className="workspace">
              <div className={`consoles ${split ? `split n${Math.min(shownInSplit.length, 6)}` : ""}`}>
                {entries.map((e) => (
                  <ConsolePane
                    key={e.id} e={e} visible={visible(e)} split={split} focused={e.id === sel?.id}
                    onFocus={() => setSelected(e.id)}
                    onFiles={transfers && ((files) => { for (const f of files) void transfers.upload(e, f); })}
                    onClose={() => setSplitIds((ids) => ids.length > 1 ? ids.filter((i) => i !== e.id) : ids)}
                  />
                ))}
              </div>
              {sel && showMeters && <MetersPanel hv={hv} e={sel} />}
            </div>
          </>
        )}
      </main>
      {creating && <CreateVmDialog hv={hv} onClose={(id) => { setCreating(false); if (id !== undefined) select(id); }} />}
    </div>
  );
}

function HostPanel({ hv }: { hv: Hypervisor }) {
  // redrawn when a figure it shows changes (meters.ts useDrawn), not with every round of samples
  // the CPU figure is written in place when it changes; the rest is drawn again when it changes
  const ref = useLiveFields<HTMLElement>(hv, () => {
    const h = hv.host();
    return [["host-cpu-now", "text", `${fmtPct(h.cpu)}%`], ["host-cpu", "data", fmtPct(h.cpu)]];
  });
  useDrawn<HTMLElement>(hv, () => {
    const h = hv.host();
    return `${h.running}/${h.vms} ${h.ramReservedMiB} ${h.balloonMiB.toFixed(0)} ` +
      (hv.persistDisks ? `${hv.diskStoredBytes()} ${hv.storage.usage} ${hv.storage.quota} ${hv.storage.persisted}` : "");
  }, ref);
  const h = hv.host();
  return (
    <section className="host" data-testid="host" ref={ref} style={{ contain: "layout paint" }}>
      <div className="host-head">
        <span>Host</span>
        <span className="muted">{h.cores} core{h.cores === 1 ? "" : "s"} · {h.running}/{h.vms} VMs running</span>
      </div>
      <div className="host-row">
        <span className="label">CPU, all VMs</span>
        <span className="value" data-testid="host-cpu" data-live="host-cpu"><span data-live="host-cpu-now" /> <span className="muted">of {h.cores * 100}%</span></span>
      </div>
      <Chart source={hv} t={h.t} series={[{ label: "cpu", color: CPU_COLOR, values: h.cpuHistory, fill: true }]} height={34} yMax={h.cores * 100} window={120} sparkline />
      <div className="host-row">
        <span className="label">RAM reserved</span>
        <span className="value" data-testid="host-ram" data-value={h.ramReservedMiB}>
          {h.ramReservedMiB} MiB{h.balloonMiB > 0 && <span className="muted"> (−{h.balloonMiB.toFixed(0)} in balloons)</span>}
        </span>
      </div>
      <StorageRow hv={hv} />
    </section>
  );
}

function StatePill({ state, attr }: { state: UiState; attr?: Record<string, string> }) {
  return <span className={`pill pill-${state}`} {...attr}>{state}</span>;
}

function VmCard({ hv, e, selected, onSelect }: { hv: Hypervisor; e: VmEntry; selected: boolean; onSelect: () => void }) {
  return (
    <div className={`card ${selected ? "selected" : ""}`} data-testid="vm-card" data-vm={e.spec.name} data-vm-state={e.state}
      data-not-responding={e.notResponding ? "true" : undefined} onClick={onSelect}>
      <div className="card-head">
        <span className="card-name">{e.spec.name}</span>
        <StatePill state={e.state} />
        {e.notResponding && <span className="pill not-responding" data-testid="not-responding" title="Its worker has not answered for a few seconds: Reset or Power off replace it">not responding</span>}
        <span className="card-actions" onClick={(ev) => ev.stopPropagation()}>
          {e.state === "paused" && <button className="icon" title="Resume" data-testid="card-resume" onClick={() => void hv.resume(e.id)}>▶</button>}
          {(e.state === "running" || e.state === "booting") && <button className="icon" title="Pause" data-testid="card-pause" onClick={() => void hv.pause(e.id)}>❚❚</button>}
          {(e.state === "stopped" || e.state === "crashed") && <button className="icon" title="Start" data-testid="card-start" onClick={() => void hv.start(e.id)}>▶</button>}
        </span>
      </div>
      <CardMeters hv={hv} e={e} />
      {e.state === "crashed" && (
        <div className="crash">
          {e.detail && <div className="crash-why">{e.detail}</div>}
          {e.crashLines && e.crashLines.length > 0 && <pre data-testid="crash-lines">{e.crashLines.join("\n")}</pre>}
        </div>
      )}
    </div>
  );
}

/** A card's live figures in a box of their own: what changes in it is laid out and painted without the page. */
const LIVE_BOX: React.CSSProperties = { display: "flex", flexDirection: "column", gap: 4, contain: "layout paint" };

/** A card's live part (uptime, CPU, memory): its figures are written in place when they change, while on screen
 *  (meters.ts useLiveFields); the rest is drawn again only when the VM's state or settings change. */
function CardMeters({ hv, e }: { hv: Hypervisor; e: VmEntry }) {
  const ram = e.spec.ramMiB;
  const ref = useLiveFields<HTMLDivElement>(hv, () => {
    const live = e.state === "running" || e.state === "booting" || e.state === "paused";
    const last = e.history.last;
    const used = last?.memUsed;
    const balloon = last?.balloon ?? 0;
    return [
      ["uptime", "text", live && e.stats ? `up ${fmtUptimeCoarse(e.stats.uptimeMs)}` : e.state === "crashed" ? "crashed" : "off"],
      ["cpu", "text", last ? `${fmtPct(last.cpu)}%` : "—"],
      ["membar", "title", used === undefined ? "guest memory: waiting for the guest's balloon statistics" : `in use ${used.toFixed(0)} MiB, balloon ${balloon.toFixed(0)} MiB, of ${ram} MiB`],
      ["used", "width", `${live && used !== undefined ? ((100 * used) / ram).toFixed(1) : 0}%`],
      ["balloon", "width", `${live ? ((100 * balloon) / ram).toFixed(1) : 0}%`],
      ["mem", "text", live && used !== undefined ? `${used.toFixed(0)} MiB` : "—"],
    ];
  });
  // the disk line changes seldom: it is drawn again (by React) when it does
  useDrawn<HTMLDivElement>(hv, () => `${e.stats?.disk?.persistent} ${e.stats?.disk?.storedBytes} ${e.diskProblem}`, ref);
  return (
    <div className="card-live" ref={ref} style={LIVE_BOX}>
      <div className="card-sub muted">
        <span data-testid="card-uptime" data-live="uptime" />
        <span>{ram} MiB</span>
        {e.spec.cpuCap < 100 && <span>cap {e.spec.cpuCap}%</span>}
        {e.spec.jit && <span title="runs with the JIT (hot guest code compiled to WebAssembly)">JIT</span>}
      </div>
      <div className="card-meter">
        <span className="meter-label">CPU</span>
        <Chart source={hv} t={e.history.t} series={[{ label: "cpu", color: CPU_COLOR, values: e.history.cpu, fill: true }]} height={26} yMax={100} window={120} sparkline className="card-spark" />
        <span className="meter-value" data-testid="card-cpu" data-live="cpu" />
      </div>
      <div className="card-meter">
        <span className="meter-label">RAM</span>
        <div className="membar" data-live="membar">
          <div className="membar-used" data-live="used" />
          <div className="membar-balloon" data-live="balloon" />
        </div>
        <span className="meter-value" data-live="mem" />
      </div>
      <DiskLine e={e} />
    </div>
  );
}

function EmptyLab({ onCreate, onSample }: { onCreate: () => void; onSample: () => void }) {
  return (
    <div className="empty" data-testid="empty-lab">
      <h2>No VMs in this lab</h2>
      <p>Create a VM, or bring back the sample lab (web1, web2 and db1).</p>
      <div className="empty-actions">
        <button className="primary" onClick={onCreate}>New VM</button>
        <button onClick={onSample}>Restore the sample lab</button>
      </div>
    </div>
  );
}

function Toolbar({ hv, e, snaps, migrations, transfers, onSelect, showMeters, onToggleMeters }: {
  hv: Hypervisor; e: VmEntry; snaps?: Snapshots; migrations?: Migrations; transfers?: Transfers; onSelect: (id: number) => void; showMeters: boolean; onToggleMeters: () => void;
}) {
  useSnapshots(snaps);
  const busy = e.busy?.label;
  /** the machine is on its way to another tab: nothing else may touch it */
  const moving = e.busy?.op === "migrate";
  const s = e.state;
  const running = s === "running" || s === "booting";
  const last = e.history.last;
  const refocus = () => requestAnimationFrame(() => e.console.focus());
  const [confirm, setConfirm] = useState(false);
  useEffect(() => setConfirm(false), [e.id]);
  return (
    <div className="toolbar">
      <span className="vm-title">{e.spec.name}</span>
      <span className={`state state-${s}`} data-testid="vm-state" data-state={s}>{s}</span>
      {e.notResponding && <span className="pill not-responding" title="Its worker has not answered for a few seconds: Reset or Power off replace it">not responding</span>}
      {e.detail && (s === "stopped" || s === "crashed") && <span className="detail" data-testid="vm-detail">{e.detail}</span>}
      {running && e.stats?.startedFrom && e.stats.startedFrom !== "boot" && (
        <span className="muted" data-testid="vm-origin" title={`its machine was restored in ${(e.stats.startMs ?? 0).toFixed(0)} ms instead of booting`}>
          from {e.stats.startedFrom === "template" ? "the template" : e.stats.startedFrom === "migration" ? "another tab" : "a snapshot"}
        </span>
      )}
      <ToolbarStats hv={hv} e={e} running={running} />
      <span className="buttons">
        {s === "paused"
          ? <button data-testid="resume" disabled={moving} onClick={() => { void hv.resume(e.id); refocus(); }}>Resume</button>
          : <button data-testid="pause" disabled={!running || moving} onClick={() => { void hv.pause(e.id); refocus(); }}>Pause</button>}
        <button data-testid="reset" disabled={moving} onClick={() => { void hv.reset(e.id); refocus(); }}>Reset</button>
        {snaps && <>
          <button data-testid="snapshot" disabled={!hv.live(e) || !!busy} title="Save the whole machine as it is now (it runs on); see Snapshots"
            onClick={() => void snaps.take(e.id)}>{e.busy?.op === "snapshot" ? busy : "Snapshot"}</button>
          <button data-testid="fork" disabled={!hv.live(e) || !!busy} title="Start a copy of this VM as it is now, with its own name and MAC; the disk is shared copy-on-write"
            onClick={() => void snaps.fork(e.id).then((c) => { if (c) onSelect(c.id); })}>{e.busy?.op === "fork" ? busy : "Fork"}</button>
        </>}
        {migrations && <MigrateButton hv={hv} e={e} migrations={migrations} busy={busy} />}
        {transfers && <FilesMenu hv={hv} e={e} transfers={transfers} disabled={moving} />}
        <DiskMenu hv={hv} e={e} say={snaps && ((kind, text) => snaps.say(kind, text))} disabled={moving} />
        <OpenPortMenu hv={hv} e={e} disabled={moving} />
        {s === "stopped" || s === "crashed"
          ? <button data-testid="power-on" onClick={() => { void hv.start(e.id); refocus(); }}>Power on</button>
          : <button data-testid="power-off" disabled={moving} onClick={() => { void hv.powerOff(e.id); refocus(); }}>Power off</button>}
        {confirm
          ? <>
            <button className="danger" data-testid="delete-confirm" onClick={() => hv.remove(e.id)}>Delete {e.spec.name}</button>
            <button onClick={() => setConfirm(false)}>Keep</button>
          </>
          : <button data-testid="delete-vm" disabled={moving} title="Power off and remove this VM" onClick={() => setConfirm(true)}>Delete</button>}
        <button className={showMeters ? "on" : ""} data-testid="toggle-meters" onClick={onToggleMeters}>Meters</button>
      </span>
    </div>
  );
}

/** The toolbar's live figures (uptime, MIPS, worker busy): written in place when they change, while on screen. */
function ToolbarStats({ hv, e, running }: { hv: Hypervisor; e: VmEntry; running: boolean }) {
  const ref = useLiveFields<HTMLSpanElement>(hv, () => {
    const l = e.history.last;
    return [
      ["uptime", "text", running && e.stats ? `up ${fmtUptimeCoarse(e.stats.uptimeMs)}` : ""],
      ["mips", "text", l && running ? `${fmtMips(l.mips)} MIPS` : ""],
      ["busy", "text", l && running ? `worker busy ${fmtPct(l.cpu)}%` : ""],
    ];
  });
  return (
    <span className="toolbar-live" ref={ref} style={{ display: "inline-flex", gap: "inherit", alignItems: "center" }}>
      <span className="muted" data-testid="vm-uptime" data-live="uptime" />
      <span className="stats" data-testid="vm-stats">
        <span title="guest instructions per second" data-live="mips" />
        <span title="host CPU the VM's worker spends running the guest (the rest of the time it sleeps)" data-live="busy" />
      </span>
    </span>
  );
}

/** The disk's size, and how much of its contents it shares with forks (copy-on-write) when it does. */
function diskNote(e: VmEntry): string {
  const d = e.stats?.disk;
  const base = `${d?.persistent ? `disk kept in the browser (${fmtBytes(d.storedBytes ?? 0)} stored)` : "in-memory disk"}, ${e.spec.diskMiB} MiB (/dev/vda)`;
  if (!d || d.sharedBytes === 0) return base;
  return `${base}; ${fmtBytes(d.ownBytes)} its own, ${fmtBytes(d.sharedBytes)} shared with forks`;
}

/** Migrate: a menu of the page's other tabs; choosing one moves the VM there while it runs. */
function MigrateButton({ hv, e, migrations, busy }: { hv: Hypervisor; e: VmEntry; migrations: Migrations; busy?: string }) {
  useSyncExternalStore(migrations.subscribe, migrations.getVersion);
  const [open, setOpen] = useState(false);
  useEffect(() => setOpen(false), [e.id]);
  const targets = migrations.targets();
  const toggle = () => {
    if (!open) void migrations.tabs.refresh(); // a tab that closed without a word drops out of the list
    setOpen(!open);
  };
  return (
    <span className="menu-anchor">
      <button data-testid="migrate" disabled={!hv.live(e) || !!busy}
        title="Move this VM, running, to another tab of this page (its network connections go on)" onClick={toggle}>
        {e.busy?.op === "migrate" ? busy : "Migrate…"}
      </button>
      {open && (
        <div className="menu" role="menu" data-testid="migrate-menu">
          {targets.length === 0
            ? <div className="menu-note">No other tab of Tabvisor is open. Open this page in another tab (it starts empty, as a second host) to move VMs there.</div>
            : targets.map((t) => (
              <button key={t.n} role="menuitem" data-testid="migrate-to" data-tab={t.name}
                onClick={() => { setOpen(false); void migrations.migrate(e.id, t); }}>
                to {t.name}
              </button>
            ))}
        </div>
      )}
    </span>
  );
}

function ConsolePane({ e, visible, split, focused, onFocus, onClose, onFiles }: {
  e: VmEntry; visible: boolean; split: boolean; focused: boolean; onFocus: () => void; onClose: () => void;
  /** files dropped on the console: they go into the guest (the page's own drop, elsewhere, opens snapshots) */
  onFiles?: (files: File[]) => void;
}) {
  const [dropping, setDropping] = useState(false);
  const slot = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = slot.current!;
    e.console.mount(el);
    return () => e.console.unmount(el);
  }, [e]);
  useEffect(() => {
    e.console.setVisible(visible);
    if (visible && focused) requestAnimationFrame(() => e.console.focus());
  }, [visible, focused, split, e]);
  return (
    <div className={`pane ${focused && split ? "focused" : ""} ${dropping ? "drop-target" : ""}`} style={{ display: visible ? undefined : "none" }} onMouseDown={onFocus}
      {...fileDrop(onFiles, setDropping)}>
      {split && (
        <div className="pane-head">
          <span className={`dot dot-${e.state}`} />
          <span className="pane-name">{e.spec.name}</span>
          <span className="muted" data-pane-state={e.state}>{e.state}</span>
          <button className="icon" title="Remove from the split view" data-testid="pane-close" onClick={(ev) => { ev.stopPropagation(); onClose(); }}>×</button>
        </div>
      )}
      <div className="console" ref={slot} data-testid="console" data-vm={e.spec.name} />
    </div>
  );
}

function MetersPanel({ hv, e }: { hv: Hypervisor; e: VmEntry }) {
  // The figures are written in place when they change (useLiveFields); the panel is drawn again (by React) only
  // when what is around them changes (the cap, the balloon, the cards, the disk). The charts draw themselves.
  const ref = useLiveFields<HTMLElement>(hv, () => {
    const l = e.history.last;
    const hasDisk = (e.spec.diskMiB ?? 0) > 0;
    const cards = e.stats?.net.cards ?? 0;
    // (each section's data-value is its figure as shown: it changes when the text does, not with every sample)
    return [
      ["meter-cpu-now", "text", l ? `${fmtPct(l.cpu)}%` : "—"],
      ["meter-cpu", "data", l ? fmtPct(l.cpu) : ""],
      ["meter-mips-now", "text", l ? `${fmtMips(l.mips)} MIPS` : "—"],
      ["meter-mips", "data", l ? fmtMips(l.mips) : ""],
      ["meter-mem-now", "text", l?.memUsed !== undefined ? `${l.memUsed.toFixed(0)} MiB used` : "—"],
      ["meter-mem", "data", l?.memUsed !== undefined ? l.memUsed.toFixed(0) : ""],
      ["meter-mem-sub", "text", `${(l?.memFree ?? 0) > 0 ? `${l!.memFree!.toFixed(0)} MiB free · ` : ""}balloon ${(l?.balloon ?? 0).toFixed(0)} MiB · RAM ${e.spec.ramMiB} MiB`],
      ["meter-disk-now", "text", hasDisk && l ? `R ${fmtBytes(l.diskRead, true)} · W ${fmtBytes(l.diskWrite, true)}` : "—"],
      ["meter-net-now", "text", cards > 0 && l ? `↓ ${fmtBytes(l.netRx, true)} · ↑ ${fmtBytes(l.netTx, true)}` : "—"],
      ["meter-net-sub", "text", cards > 0 && l ? `${l.netRxPkts.toFixed(0)} / ${l.netTxPkts.toFixed(0)} packets/s` : ""],
      ...jitFields(l),
    ];
  });
  // the JIT's meter is there while the machine running has a JIT (VmStats.jit)
  const jitNow = e.stats && hv.live(e) ? e.stats.jit !== undefined : undefined;
  useDrawn<HTMLElement>(hv, () => [e.effectiveCap, e.stats?.balloon?.actualPages, e.stats?.net.cards, diskNote(e), jitNow].join(" "), ref);
  const h = e.history;
  const ram = e.spec.ramMiB;
  const b = e.stats?.balloon;
  const capLine = () => e.effectiveCap;
  const hasDisk = (e.spec.diskMiB ?? 0) > 0;
  const cards = e.stats?.net.cards ?? 0;
  return (
    <aside className="meters" data-testid="meters" data-vm={e.spec.name} ref={ref} style={{ contain: "layout paint" }}>
      <Meter title="CPU" note="host core used by the VM's worker" sub={`cap ${e.effectiveCap}%${e.effectiveCap < e.spec.cpuCap ? " (shared by weight)" : ""}`} testid="meter-cpu">
        <Chart source={hv} t={h.t} series={[{ label: "busy", color: CPU_COLOR, values: h.cpu, fill: true }, { label: "cap", color: CAP_COLOR, level: capLine, dash: [4, 3], width: 1 }]} window={HISTORY_SECONDS} height={70} yMax={100} yFmt={(v) => `${v}%`} />
      </Meter>
      <Meter title="Guest instructions" note="retired per second" testid="meter-mips">
        <Chart source={hv} t={h.t} series={[{ label: "MIPS", color: MIPS_COLOR, values: h.mips, fill: true }]} window={HISTORY_SECONDS} height={60} yFloor={100} yFmt={(v) => `${v}`} />
      </Meter>
      <Meter title="Memory" note="the guest's MemTotal − MemAvailable, from virtio-balloon statistics" liveSub testid="meter-mem">
        <Chart source={hv} t={h.t} series={[
          { label: "used", color: MEM_COLOR, values: h.memUsed, fill: true },
          { label: "guest can use", color: AVAIL_COLOR, values: h.memAvail, dash: [4, 3], width: 1 },
          { label: "balloon", color: BALLOON_COLOR, values: h.balloon, width: 1 },
        ]} window={HISTORY_SECONDS} height={70} yMax={ram} yFmt={(v) => `${v}M`} />
      </Meter>
      <Meter title="Disk" note={hasDisk ? diskNote(e) : "no disk"} testid="meter-disk">
        {hasDisk && <Chart source={hv} t={h.t} series={[{ label: "read", color: READ_COLOR, values: h.diskRead }, { label: "write", color: WRITE_COLOR, values: h.diskWrite }]} window={HISTORY_SECONDS} height={56} yFloor={1e6} yFmt={(v) => fmtBytes(v)} />}
      </Meter>
      <Meter title="Network" note={cards > 0 ? `${cards} card${cards > 1 ? "s" : ""}` : "no network card"} liveSub testid="meter-net">
        {cards > 0 && <Chart source={hv} t={h.t} series={[{ label: "rx", color: READ_COLOR, values: h.netRx }, { label: "tx", color: WRITE_COLOR, values: h.netTx }]} window={HISTORY_SECONDS} height={56} yFloor={1e5} yFmt={(v) => fmtBytes(v)} />}
      </Meter>
      {jitNow && (
        <Meter title="JIT" note="host CPU spent compiling guest code, of the worker's busy time; instructions run as compiled code, of all the guest ran" liveSub testid="meter-jit">
          <Chart source={hv} t={h.t} series={[
            { label: "compiling", color: COMPILE_COLOR, values: h.jitCompile, fill: true },
            { label: "compiled code", color: COMPILED_COLOR, values: h.jitShare, width: 1 },
          ]} window={HISTORY_SECONDS} height={56} yMax={100} yFmt={(v) => `${v}%`} />
        </Meter>
      )}
      <Controls hv={hv} e={e} balloonActualMiB={b ? (b.actualPages * 4096) / 1048576 : 0} jitNow={jitNow} />
    </aside>
  );
}

/** A meter of the panel: its figure (and `liveSub`'s line under it) are live fields named after `testid`
 *  (`testid-now`, `testid-sub`; its data-value is `testid`'s), written by the panel's useLiveFields. */
function Meter({ title, note, sub, liveSub, testid, children }: {
  title: string; note: string; sub?: string; liveSub?: boolean; testid: string; children?: React.ReactNode;
}) {
  return (
    <section className="meter" data-testid={testid} data-live={testid}>
      <div className="meter-head">
        <span className="meter-title" title={note}>{title}</span>
        <span className="meter-now" data-live={`${testid}-now`} />
      </div>
      {sub && <div className="meter-sub muted">{sub}</div>}
      {liveSub && <div className="meter-sub muted" data-live={`${testid}-sub`} />}
      {children}
      <div className="meter-note muted">{note}</div>
    </section>
  );
}

/** A number field that commits on Enter or when it loses focus. */
function NumberField({ value, min, max, step, onCommit, testid, unit }: {
  value: number; min: number; max: number; step: number; onCommit: (v: number) => void; testid: string; unit: string;
}) {
  const [text, setText] = useState(String(value));
  useEffect(() => setText(String(value)), [value]);
  const commit = () => {
    const v = Number(text);
    if (text.trim() === "" || !Number.isFinite(v)) { setText(String(value)); return; }
    const c = Math.max(min, Math.min(max, v));
    setText(String(c));
    if (c !== value) onCommit(c);
  };
  return (
    <span className="numfield">
      <input type="number" data-testid={testid} min={min} max={max} step={step} value={text}
        onChange={(ev) => setText(ev.target.value)} onBlur={commit}
        onKeyDown={(ev) => { if (ev.key === "Enter") commit(); }} />
      <span className="muted">{unit}</span>
    </span>
  );
}

/** Redrawn when the VM's settings change or the balloon moves, not with every sample. `jitNow`: whether the machine
 *  running has the JIT (undefined: no machine runs). */
const Controls = memo(function Controls({ hv, e, balloonActualMiB, jitNow }: { hv: Hypervisor; e: VmEntry; balloonActualMiB: number; jitNow?: boolean }) {
  useStructure(hv);
  const maxB = maxBalloonMiB(e.spec.ramMiB);
  const [cap, setCap] = useState(e.spec.cpuCap);
  const [bal, setBal] = useState(e.spec.balloonMiB);
  useEffect(() => setCap(e.spec.cpuCap), [e.spec.cpuCap, e.id]);
  useEffect(() => setBal(e.spec.balloonMiB), [e.spec.balloonMiB, e.id]);
  return (
    <section className="controls" data-testid="controls">
      <div className="meter-title">Resources</div>
      <label className="control">
        <span className="control-name" title="percent of one host core the guest may use; the worker runs it cap% of every 100 ms">CPU cap</span>
        <input type="range" min={5} max={100} step={5} value={cap} onChange={(ev) => setCap(Number(ev.target.value))}
          onPointerUp={() => hv.setCpuCap(e.id, cap)} onKeyUp={() => hv.setCpuCap(e.id, cap)} aria-label="CPU cap" />
        <NumberField value={e.spec.cpuCap} min={1} max={100} step={1} unit="%" testid="cpu-cap" onCommit={(v) => hv.setCpuCap(e.id, v)} />
      </label>
      <label className="control">
        <span className="control-name" title="share of the host's cores when VMs want more than there is (relative to the other VMs' weights)">CPU weight</span>
        <span className="control-hint muted">{e.effectiveCap < e.spec.cpuCap ? `now capped at ${e.effectiveCap}%` : "no contention"}</span>
        <NumberField value={e.spec.weight} min={1} max={10000} step={10} unit="" testid="cpu-weight" onCommit={(v) => hv.setWeight(e.id, v)} />
      </label>
      <label className="control">
        <span className="control-name" title={`memory the guest hands back through virtio-balloon; it keeps at least ${BALLOON_FLOOR_MIB} MiB`}>Balloon</span>
        <input type="range" min={0} max={maxB} step={4} value={bal} onChange={(ev) => setBal(Number(ev.target.value))}
          onPointerUp={() => hv.setBalloon(e.id, bal)} onKeyUp={() => hv.setBalloon(e.id, bal)} aria-label="Balloon" disabled={maxB === 0} />
        <NumberField value={e.spec.balloonMiB} min={0} max={maxB} step={4} unit="MiB" testid="balloon-mib" onCommit={(v) => hv.setBalloon(e.id, v)} />
      </label>
      <div className="control-hint muted" data-testid="balloon-actual" data-value={balloonActualMiB.toFixed(1)}>
        guest gave back {balloonActualMiB.toFixed(0)} of {e.spec.balloonMiB} MiB asked · keeps {(e.spec.ramMiB - balloonActualMiB).toFixed(0)} MiB
      </div>
      <label className="control">
        <span className="control-name" title="compile hot guest code to WebAssembly instead of interpreting it all (for debugging and comparison); the machine is built with it, so a change takes effect at the next start">JIT</span>
        <span className="control-hint muted" data-testid="jit-hint">{jitHint(!!e.spec.jit, jitNow)}</span>
        <input type="checkbox" data-testid="jit" checked={!!e.spec.jit} onChange={(ev) => hv.setJit(e.id, ev.target.checked)} aria-label="JIT" />
      </label>
    </section>
  );
});
