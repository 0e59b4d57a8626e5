// The lab open in the page: the lab file, its build (progress, or why it failed), and its checks' results. The
// Lab panel (LabPanel.tsx) draws it; React follows it through subscribe/version. A lab in the saved lab's tab is
// remembered (IndexedDB) with its results, so a reload finds the panel as it was (its VMs are in the saved lab).

import { get, set, del } from "idb-keyval";
import type { Lab, FullLab } from "../labs/types.ts";
import { validateLab, formatLabError } from "../labs/validate.ts";
import { buildLab, runCheck, LabBuildError, type BuildProgress, type CheckResult, type LabHost } from "./runner.ts";

export type BuildState =
  | { kind: "idle" }
  | { kind: "building"; progress: BuildProgress }
  | { kind: "built" }
  | { kind: "failed"; error: string };

const STORE_KEY = "tabvisor.openlab.v1";

/** Where snippets go: the VM's console, as if typed (the page selects the VM's tab and types). */
export interface SnippetSink {
  type(vm: string, text: string): void;
}

export class LabSession {
  build: BuildState = { kind: "idle" };
  /** per check, keyed "step.check": its last result, or "running" */
  readonly results = new Map<string, CheckResult | "running">();
  version = 0;
  private readonly listeners = new Set<() => void>();

  constructor(readonly lab: Lab, readonly full: FullLab, private readonly host: LabHost,
              private readonly sink: SnippetSink, private readonly remember: boolean,
              /** what an import from another tool's format left out */
              readonly notes: string[] = []) {}

  /** A session for a lab file's contents; throws saying every error (path: reason) when it is not a valid lab. */
  static fromValue(value: unknown, host: LabHost, sink: SnippetSink, remember: boolean): LabSession {
    const r = validateLab(value);
    if (!r.ok) throw new Error(r.errors.map(formatLabError).join("\n"));
    return new LabSession(r.lab, r.full, host, sink, remember);
  }

  /** The lab the saved lab's tab had open at its last visit (its results with it), or undefined. */
  static async restore(host: LabHost, sink: SnippetSink): Promise<LabSession | undefined> {
    try {
      const saved = await get<{ lab: unknown; results: [string, CheckResult][]; built: boolean }>(STORE_KEY);
      if (!saved) return undefined;
      const s = LabSession.fromValue(saved.lab, host, sink, true);
      for (const [k, r] of saved.results ?? []) s.results.set(k, r);
      if (saved.built) s.build = { kind: "built" };
      return s;
    } catch {
      return undefined;
    }
  }

  subscribe = (fn: () => void): (() => void) => { this.listeners.add(fn); return () => this.listeners.delete(fn); };
  getVersion = (): number => this.version;

  private changed(): void {
    this.version++;
    for (const fn of this.listeners) fn();
    if (this.remember && this.build.kind !== "building") {
      const results = [...this.results].filter((e): e is [string, CheckResult] => e[1] !== "running");
      void set(STORE_KEY, { lab: this.lab, results, built: this.build.kind === "built" }).catch(() => {});
    }
  }

  /** Builds the lab into the page (see runner.ts: never half built). */
  async start(): Promise<void> {
    if (this.build.kind === "building") return;
    this.results.clear();
    this.build = { kind: "building", progress: { done: 0, total: 1, doing: "" } };
    this.changed();
    try {
      await buildLab(this.full, this.host, (progress) => { this.build = { kind: "building", progress }; this.changed(); });
      this.build = { kind: "built" };
    } catch (e) {
      this.build = { kind: "failed", error: e instanceof LabBuildError ? e.message : `The lab could not be built: ${(e as Error).message}` };
    }
    this.changed();
  }

  /** Removes the lab's VMs and networks and builds it again from its file. */
  async reset(): Promise<void> {
    for (const vm of this.full.vms) this.host.removeVm(vm.name);
    for (const n of this.full.networks) this.host.removeNetwork(n.name);
    await this.start();
  }

  async check(step: number, i: number): Promise<CheckResult> {
    const key = `${step}.${i}`;
    this.results.set(key, "running");
    this.changed();
    const r = await runCheck(this.full.steps[step].checks[i], this.host);
    this.results.set(key, r);
    this.changed();
    return r;
  }

  /** Types a step's snippet into its VM's console. */
  snippet(step: number, i: number): void {
    const s = this.full.steps[step].snippets[i];
    this.sink.type(s.vm, s.command.endsWith("\n") ? s.command : s.command + "\n");
  }

  /** checks passed, of all */
  progress(): { passed: number; total: number } {
    let passed = 0, total = 0;
    this.full.steps.forEach((s, si) => s.checks.forEach((_, ci) => {
      total++;
      const r = this.results.get(`${si}.${ci}`);
      if (r && r !== "running" && r.pass) passed++;
    }));
    return { passed, total };
  }

  /** The page no longer holds this lab (its VMs stay). */
  close(): void {
    if (this.remember) void del(STORE_KEY).catch(() => {});
  }
}
