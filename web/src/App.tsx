// The page: one VM, its console, a status line with the stats, and the controls.

import { useCallback, useEffect, useRef, useState } from "react";
import type { Terminal } from "@xterm/xterm";
import { Console, terminalText } from "./Console.tsx";
import { VmHandle } from "./vm-handle.ts";
import { loadGuest, DownloadError, type LoadProgress } from "./images.ts";
import type { EnvironmentProblem } from "./environment.ts";
import type { VmState, VmStats } from "../shared/protocol.ts";

/** What tests and the console of the browser's devtools can reach: window.tabvisor. */
export interface TabvisorHook {
  vm?: VmHandle;
  state(): VmState | "loading" | "failed";
  /** the terminal's text (scrollback and screen) */
  text(): string;
  stats(): Promise<VmStats | undefined>;
}
declare global {
  interface Window { tabvisor?: TabvisorHook }
}

const VM_NAME = "tabvisor";

function useVm(onProgress: (p: LoadProgress) => void, onProblem: (p: EnvironmentProblem) => void): VmHandle | undefined {
  const [vm, setVm] = useState<VmHandle>();
  useEffect(() => {
    let handle: VmHandle | undefined;
    let cancelled = false;
    loadGuest(onProgress).then(({ hart, images }) => {
      if (cancelled) return;
      handle = new VmHandle({ name: VM_NAME, hart, images });
      setVm(handle);
      void handle.start();
    }, (e: unknown) => {
      if (cancelled) return;
      if (e instanceof DownloadError) onProblem({ title: "The guest images could not be downloaded", detail: e.message, fix: e.fix });
      else onProblem({ title: "The VM could not be set up", detail: String((e as Error)?.message ?? e), fix: "Reload the page; if it keeps failing, see the browser's console." });
    });
    return () => { cancelled = true; handle?.dispose(); };
  }, []);
  return vm;
}

interface Rates { mips: number; busyPct: number }

function useRates(vm: VmHandle | undefined): { stats?: VmStats; rates?: Rates } {
  const [out, setOut] = useState<{ stats?: VmStats; rates?: Rates }>({});
  useEffect(() => {
    if (!vm) return;
    let last: { s: VmStats; t: number } | undefined;
    let stop = false;
    const tick = async () => {
      const s = await vm.stats().catch(() => undefined);
      if (stop || !s) return;
      const t = performance.now();
      let rates: Rates | undefined;
      if (last && s.instret >= last.s.instret) {
        const dt = t - last.t;
        const dBusy = s.busyMs - last.s.busyMs;
        const dIdle = s.idleMs - last.s.idleMs;
        rates = {
          mips: (s.instret - last.s.instret) / dt / 1000,
          busyPct: dBusy + dIdle > 0 ? (100 * dBusy) / (dBusy + dIdle) : 0,
        };
      }
      last = { s, t };
      setOut({ stats: s, rates });
    };
    void tick();
    const id = setInterval(tick, 1000);
    return () => { stop = true; clearInterval(id); };
  }, [vm]);
  return out;
}

export function App() {
  const [progress, setProgress] = useState<LoadProgress>();
  const [problem, setProblem] = useState<EnvironmentProblem>();
  const vm = useVm(setProgress, setProblem);
  const [state, setState] = useState<VmState>("created");
  const [detail, setDetail] = useState<string>();
  const term = useRef<Terminal | undefined>(undefined);
  const { rates } = useRates(vm);

  useEffect(() => {
    if (!vm) return;
    setState(vm.state);
    return vm.onStateChange((s, d) => { setState(s); setDetail(d); });
  }, [vm]);

  useEffect(() => {
    window.tabvisor = {
      vm,
      state: () => (problem ? "failed" : vm ? vm.state : "loading"),
      text: () => (term.current ? terminalText(term.current) : ""),
      stats: async () => vm?.stats(),
    };
  }, [vm, problem]);

  const onTerminal = useCallback((t: Terminal | undefined) => { term.current = t; }, []);
  const refocus = () => term.current?.focus();

  if (problem) return <ProblemView problem={problem} />;

  const shownState = vm ? state : "loading";
  const running = state === "running" || state === "booting";
  return (
    <div className="app">
      <header className="bar">
        <span className="title">Tabvisor</span>
        <span className="vm-name">{VM_NAME}</span>
        <span className={`state state-${shownState}`} data-testid="vm-state" data-state={shownState}>{shownState}</span>
        {detail && (state === "stopped" || state === "error") && <span className="detail">{detail}</span>}
        <span className="stats" data-testid="vm-stats">
          {rates && running ? <>
            <span title="guest instructions per second">{rates.mips.toFixed(1)} MIPS</span>
            <span title="share of the worker's time spent running the guest (the rest it sleeps)">worker busy {rates.busyPct.toFixed(1)}%</span>
          </> : null}
        </span>
        <span className="buttons">
          {state === "paused"
            ? <button data-testid="resume" onClick={() => { void vm?.resume(); refocus(); }}>Resume</button>
            : <button data-testid="pause" disabled={!vm || !running} onClick={() => { void vm?.pause(); refocus(); }}>Pause</button>}
          <button data-testid="reset" disabled={!vm} onClick={() => { void vm?.reset(); refocus(); }}>Reset</button>
          {state === "stopped" || state === "error"
            ? <button data-testid="power-on" onClick={() => { void vm?.start(); refocus(); }}>Power on</button>
            : <button data-testid="power-off" disabled={!vm || state === "created"} onClick={() => { void vm?.powerOff(); refocus(); }}>Power off</button>}
        </span>
      </header>
      {!vm && <LoadingView progress={progress} />}
      {vm && <Console vm={vm} onTerminal={onTerminal} />}
    </div>
  );
}

function LoadingView({ progress }: { progress?: LoadProgress }) {
  const pct = progress && progress.total > 0 ? (100 * progress.loaded) / progress.total : 0;
  return (
    <div className="loading" data-testid="loading">
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
