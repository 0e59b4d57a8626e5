// A fuzzing campaign: random programs (program.ts) run one after another on fresh harts, each held to the rules a
// hostile program must not break on the host: it ends (through tohost, a fatal stop or the timeout) within its time
// limit plus a margin, it throws nothing on the host, and memory does not grow without bound over the campaign.

import { runBareElfWith, type BareRunResult } from "../bare.ts";
import { fuzzProgram } from "./program.ts";

export interface CampaignOptions {
  from: number;
  to: number;
  instructions: number;
  timeoutMs: number;
  /** told of each rule broken, as it happens */
  onFailure?: (f: { seed: number; problem: string }) => void;
}

export interface CampaignReport {
  runs: number;
  /** guest instructions executed in all */
  executed: number;
  hostMs: number;
  /** how the runs ended: "pass", "fail" (through tohost: the trap limit, or a random store there), "timeout",
   *  "error" (a fatal stop) */
  statuses: Record<string, number>;
  failures: { seed: number; problem: string }[];
  /** resident memory at the end minus at the start (bytes) */
  rssGrowth: number;
}

/** A run may overrun its timeout by this much (the timeout is checked between slices of the hart). */
export const OVERRUN_MS = 1000;
/** Memory the campaign may grow by. Each run's hart (its wasm memory) is dropped after it, but V8 collects them
 *  lazily: without a gc() between runs (node --expose-gc, as npm run fuzz does) resident memory swings by a GiB or
 *  more before falling back. A program that makes the host keep what it emits (the console flood of issue 12) grows
 *  it by gigabytes within a few runs. */
export const RSS_GROWTH_LIMIT = 2048 * 1048576;
const gc = (globalThis as { gc?: () => void }).gc;

/**
 * The rules every campaign holds its runs to (the hart's random programs here, the hostile virtio driver in
 * virtio-campaign.ts): nothing thrown on the host, each run within its timeout plus OVERRUN_MS, resident memory
 * grown by at most RSS_GROWTH_LIMIT over the campaign. A campaign adds its own rules through fail().
 */
export class CampaignRules {
  readonly failures: { seed: number; problem: string }[] = [];
  runs = 0;
  private readonly rss0 = process.memoryUsage().rss;

  /** gcEvery: runs between collections where gc() is exposed (a run that holds more memory wants them sooner) */
  constructor(private readonly onFailure?: (f: { seed: number; problem: string }) => void, private readonly gcEvery = 50) {}

  fail(seed: number, problem: string): void {
    this.failures.push({ seed, problem });
    this.onFailure?.({ seed, problem });
  }

  /** Runs one seed: a host exception breaks the rule; returns undefined then. */
  run<T>(seed: number, fn: () => T): T | undefined {
    try {
      return fn();
    } catch (e) {
      return this.threw(seed, e);
    } finally {
      this.ran();
    }
  }

  /** run() for a run that returns a promise */
  async runAsync<T>(seed: number, fn: () => Promise<T>): Promise<T | undefined> {
    try {
      return await fn();
    } catch (e) {
      return this.threw(seed, e);
    } finally {
      this.ran();
    }
  }

  private threw(seed: number, e: unknown): undefined {
    this.fail(seed, `the host threw: ${(e as Error).stack ?? e}`);
    return undefined;
  }

  private ran(): void {
    this.runs++;
    if (gc && this.runs % this.gcEvery === 0) gc();
  }

  checkTime(seed: number, ms: number, timeoutMs: number): void {
    if (ms > timeoutMs + OVERRUN_MS) this.fail(seed, `ran ${ms.toFixed(0)} ms, past its ${timeoutMs} ms timeout`);
  }

  /** At the end of the campaign: the memory rule. Returns the growth (bytes). */
  finish(lastSeed: number): number {
    const growth = process.memoryUsage().rss - this.rss0;
    if (growth > RSS_GROWTH_LIMIT) this.fail(lastSeed, `memory grew by ${(growth / 1048576).toFixed(0)} MiB over the campaign`);
    return growth;
  }
}

/** "1-200" or "7": the seeds to run. */
export function parseSeeds(s: string): { from: number; to: number } {
  const m = /^(\d+)(?:-(\d+))?$/.exec(s.trim());
  if (!m) throw new Error(`--seeds takes N or N-M, not "${s}"`);
  const from = Number(m[1]), to = Number(m[2] ?? m[1]);
  if (to < from) throw new Error(`--seeds ${s}: the range is empty`);
  return { from, to };
}

export function fuzzCampaign(module: WebAssembly.Module, opts: CampaignOptions): CampaignReport {
  const report: CampaignReport = { runs: 0, executed: 0, hostMs: 0, statuses: {}, failures: [], rssGrowth: 0 };
  const rules = new CampaignRules(opts.onFailure);
  const t0 = performance.now();
  for (let seed = opts.from; seed <= opts.to; seed++) {
    const { elf } = fuzzProgram(seed, { instructions: opts.instructions, ramMiB: 16 });
    const started = performance.now();
    const r: BareRunResult | undefined = rules.run(seed, () => runBareElfWith(module, elf, { timeoutMs: opts.timeoutMs, ramMiB: 16, sliceSize: 100_000 }));
    if (!r) continue;
    const ms = performance.now() - started;
    report.executed += Number(r.instructions);
    report.statuses[r.status] = (report.statuses[r.status] ?? 0) + 1;
    rules.checkTime(seed, ms, opts.timeoutMs);
    // a fatal stop of the hart is a clean end; any other error means the program did not even load
    if (r.status === "error" && !/fatal/.test(r.message)) rules.fail(seed, `did not run: ${r.message}`);
  }
  report.hostMs = performance.now() - t0;
  report.rssGrowth = rules.finish(opts.to);
  report.runs = rules.runs;
  report.failures = rules.failures;
  return report;
}
