// The JIT's counters for the benchmarks (bench:linux, bench:cpu), read through its public surface only:
// hart.jit.stats, hart.jit.calls and hart.jit.invalidations (emulator-core/src/jit/tier.ts). The compiler is being
// rewritten, so nothing here names a stats field it needs: every numeric field found is kept under its name and
// printed (a field for code memory, once there is one, shows up as its own column), and a counter that went away
// is simply absent instead of failing the benchmark.

import { table } from "./table.ts";

/** Numeric counters by name: the stats fields as they are named, "calls.<name>" for jit.calls, "invalidations",
 *  "held.<name>" for jit.resident (what is held now: a step's delta is its growth, the session's what it ends with). */
export type JitCounters = Record<string, number>;

function numericFields(o: unknown): [string, number][] {
  if (!o || typeof o !== "object") return [];
  return Object.entries(o as Record<string, unknown>)
    .filter(([, v]) => typeof v === "number" || typeof v === "bigint")
    .map(([k, v]) => [k, Number(v)]);
}

/** The tier's counters now (cumulative since it was made), or undefined when the JIT is off. */
export function readJitCounters(jit: unknown): JitCounters | undefined {
  if (!jit || typeof jit !== "object") return undefined;
  const j = jit as { stats?: unknown; calls?: unknown; invalidations?: unknown };
  const out: JitCounters = Object.fromEntries(numericFields(j.stats));
  for (const [k, v] of numericFields(j.calls)) out[`calls.${k}`] = v;
  for (const [k, v] of numericFields((jit as { resident?: unknown }).resident)) out[`held.${k}`] = v;
  if (typeof j.invalidations === "number") out.invalidations = j.invalidations;
  return out;
}

/** The tier's settings worth printing beside its figures (threshold, module cap), as "name value" pairs. */
export function describeJitSettings(jit: unknown): string {
  if (!jit || typeof jit !== "object") return "off";
  const j = jit as Record<string, unknown>;
  const parts = ["threshold", "maxModules", "maxCodeBytes", "startAfter"].filter((k) => typeof j[k] === "number").map((k) => `${k} ${j[k]}`);
  return parts.join(", ") || "on";
}

/** What happened between two readings; a counter missing from the earlier one counts from 0. */
export function jitDelta(after: JitCounters, before: JitCounters | undefined): JitCounters {
  return Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before?.[k] ?? 0)]));
}

/** One line of the JIT table: a step or a program, its host wall time and the guest instructions it retired. */
export interface JitRow {
  label: string;
  wallMs: number;
  instret?: number;
  jit: JitCounters;
}

const LABELS: Record<string, string> = {
  compiled: "compiled",
  notCompiled: "not compiled",
  reinstalled: "reinstalled",
  evicted: "evicted",
  instructions: "compiled instr",
  // bytes of WebAssembly compiled (the rewritten tier's count; cumulative, not what is held at once)
  codeBytes: "code bytes",
  evictedForCode: "evicted for code",
  "held.regions": "held regions (change)",
  "held.codeBytes": "held code bytes (change)",
};

/** Fields given columns of their own with derived figures, so they are not repeated among the plain ones. */
const DERIVED = new Set(["compileMs", "invalidations", "calls.blocks", "calls.instructions"]);

const fixed = (x: number | undefined, d: number): string => (x === undefined || !Number.isFinite(x) ? "-" : x.toFixed(d));
const share = (part: number | undefined, whole: number | undefined): string =>
  part === undefined || !whole ? "-" : `${((part / whole) * 100).toFixed(1)}%`;

/** Compile time and its share of the wall time, every other counter, then where the instructions ran. */
export function jitTable(rows: JitRow[], labelHead: string): string {
  const plain = [...new Set(rows.flatMap((r) => Object.keys(r.jit)))].filter((k) => !DERIVED.has(k));
  const head = [labelHead, "compile ms", "compile %", ...plain.map((k) => LABELS[k] ?? k),
    "invalidations", "block entries", "instr/entry", "in compiled %"];
  const body = rows.map(({ label, wallMs, instret, jit }) => {
    const entries = jit["calls.blocks"], retired = jit["calls.instructions"];
    return [label, fixed(jit.compileMs, 0), share(jit.compileMs, wallMs), ...plain.map((k) => fixed(jit[k], 0)),
      fixed(jit.invalidations, 0), fixed(entries, 0), entries ? fixed((retired ?? NaN) / entries, 1) : "-", share(retired, instret)];
  });
  return table([head, ...body]);
}

/** The median of each field over repetitions (a field missing from a repetition is left out of its median). */
export function medianRow(label: string, reps: Omit<JitRow, "label">[]): JitRow | undefined {
  if (!reps.length) return undefined;
  const keys = [...new Set(reps.flatMap((r) => Object.keys(r.jit)))];
  const instrs = reps.flatMap((r) => (r.instret === undefined ? [] : [r.instret]));
  return {
    label,
    wallMs: median(reps.map((r) => r.wallMs)),
    instret: instrs.length ? median(instrs) : undefined,
    jit: Object.fromEntries(keys.map((k) => [k, median(reps.flatMap((r) => (k in r.jit ? [r.jit[k]] : [])))])),
  };
}

export function median(xs: number[]): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
