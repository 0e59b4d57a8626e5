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
const OVERRUN_MS = 1000;
/** Memory the campaign may grow by. Each run's hart (its wasm memory) is dropped after it, but V8 collects them
 *  lazily: without a gc() between runs (node --expose-gc, as npm run fuzz does) resident memory swings by a GiB or
 *  more before falling back. A program that makes the host keep what it emits (the console flood of issue 12) grows
 *  it by gigabytes within a few runs. */
const RSS_GROWTH_LIMIT = 2048 * 1048576;
const gc = (globalThis as { gc?: () => void }).gc;

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
  const fail = (seed: number, problem: string) => { report.failures.push({ seed, problem }); opts.onFailure?.({ seed, problem }); };
  const rss0 = process.memoryUsage().rss;
  const t0 = performance.now();
  for (let seed = opts.from; seed <= opts.to; seed++) {
    const { elf } = fuzzProgram(seed, { instructions: opts.instructions, ramMiB: 16 });
    const started = performance.now();
    let r: BareRunResult;
    try {
      r = runBareElfWith(module, elf, { timeoutMs: opts.timeoutMs, ramMiB: 16, sliceSize: 100_000 });
    } catch (e) {
      fail(seed, `the host threw: ${(e as Error).stack ?? e}`);
      continue;
    } finally {
      report.runs++;
      if (gc && report.runs % 50 === 0) gc();
    }
    const ms = performance.now() - started;
    report.executed += Number(r.instructions);
    report.statuses[r.status] = (report.statuses[r.status] ?? 0) + 1;
    if (ms > opts.timeoutMs + OVERRUN_MS) fail(seed, `ran ${ms.toFixed(0)} ms, past its ${opts.timeoutMs} ms timeout`);
    // a fatal stop of the hart is a clean end; any other error means the program did not even load
    if (r.status === "error" && !/fatal/.test(r.message)) fail(seed, `did not run: ${r.message}`);
  }
  report.hostMs = performance.now() - t0;
  report.rssGrowth = process.memoryUsage().rss - rss0;
  if (report.rssGrowth > RSS_GROWTH_LIMIT) fail(opts.to, `memory grew by ${(report.rssGrowth / 1048576).toFixed(0)} MiB over the campaign`);
  return report;
}
