// `npm run bench:cpu`: builds the bare-metal CPU benchmarks (cli/bench/programs, with the
// riscv64-linux-gnu cross gcc), runs each on the hart through runBareElf with the interpreter alone and with the
// JIT on (emulator-core/src/jit/README.md), and prints guest instructions, host seconds and guest MIPS of both
// side by side, then what the JIT did for each program (compile time and its share, blocks compiled and evicted,
// block entries, the share of instructions retired in compiled code, and every other counter the JIT keeps).
// Exits non-zero if a program does not pass, with either tier.
//
//   npm run bench:cpu [-- --only NAME[,NAME]] [--timeout-ms N] [--repeat N] [--jit-only | --no-jit] [--jit-threshold N]

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { runBareElf, type BareRunOptions, type BareRunResult } from "../emulator-core/src/bare.ts";
import { Hart } from "../emulator-core/src/hart.ts";
import { describeJitSettings, jitTable, readJitCounters, type JitCounters, type JitRow } from "./bench/jit-stats.ts";
import { table } from "./bench/table.ts";

const PROGRAMS = ["dhry", "memwalk", "fpkernel"] as const;
const BUILD_SH = fileURLToPath(new URL("./bench/programs/build.sh", import.meta.url));

function die(message: string): never {
  process.stderr.write(`bench:cpu: ${message}\n`);
  process.exit(2);
}

interface Options {
  selected: string[];
  timeoutMs: number;
  repeat: number;
  interp: boolean;
  jit: boolean;
  jitThreshold?: number;
}

function parseOptions(): Options {
  let values;
  try {
    values = parseArgs({
      options: {
        only: { type: "string" },
        "timeout-ms": { type: "string" },
        repeat: { type: "string" },
        "jit-only": { type: "boolean" },
        "no-jit": { type: "boolean" },
        "jit-threshold": { type: "string" },
      },
      strict: true,
    }).values;
  } catch (e) {
    die((e as Error).message);
  }
  const timeoutMs = values["timeout-ms"] !== undefined ? Number(values["timeout-ms"]) : 300_000;
  const repeat = values.repeat !== undefined ? Number(values.repeat) : 1;
  const jitThreshold = values["jit-threshold"] !== undefined ? Number(values["jit-threshold"]) : undefined;
  if (!(timeoutMs > 0)) die(`--timeout-ms must be a positive number`);
  if (!(Number.isInteger(repeat) && repeat > 0)) die(`--repeat must be a positive integer`);
  if (values["jit-only"] && values["no-jit"]) die("--jit-only and --no-jit leave nothing to run");
  if (jitThreshold !== undefined && !(Number.isInteger(jitThreshold) && jitThreshold > 0)) die("--jit-threshold must be a positive integer");
  if (jitThreshold !== undefined && values["no-jit"]) die("--jit-threshold goes without --no-jit");
  const selected = values.only ? values.only.split(",").map((s) => s.trim()) : [...PROGRAMS];
  for (const name of selected) {
    if (!(PROGRAMS as readonly string[]).includes(name)) die(`unknown program ${name} (have: ${PROGRAMS.join(", ")})`);
  }
  return { selected, timeoutMs, repeat, jitThreshold, interp: !values["jit-only"], jit: !values["no-jit"] };
}

/** Builds the programs into a fresh directory (the caller removes it). */
function buildPrograms(): string {
  const outDir = mkdtempSync(join(tmpdir(), "tabvisor-bench-"));
  try {
    execFileSync("sh", [BUILD_SH, outDir], { stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    rmSync(outDir, { recursive: true, force: true });
    const err = e as { stderr?: Buffer; message: string };
    die(`building the benchmarks failed (is riscv64-linux-gnu-gcc installed?)\n${err.stderr?.toString() ?? err.message}`);
  }
  return outDir;
}

interface JitRun { result: BareRunResult; jit?: JitCounters; settings: string }

/** Runs the program with the JIT on (Hart.jitByDefault, as `vm --elf --jit` does) and reads the tier's counters
 *  at its end. runBareElf makes its hart itself and does not hand it out, so the tier is caught as the hart's
 *  constructor turns it on (enableJit), and the hooks are put back whatever happens. */
async function runWithJit(elf: Uint8Array, opts: BareRunOptions, threshold: number | undefined): Promise<JitRun> {
  const tiers: unknown[] = [];
  const enableJit = Hart.prototype.enableJit;
  Hart.prototype.enableJit = function (this: Hart, ...args: Parameters<Hart["enableJit"]>) {
    const tier = enableJit.apply(this, args);
    tiers.push(tier);
    return tier;
  };
  Hart.jitByDefault = { threshold };
  try {
    const result = await runBareElf(elf, opts);
    return { result, jit: readJitCounters(tiers[0]), settings: describeJitSettings(tiers[0]) };
  } finally {
    Hart.jitByDefault = undefined;
    Hart.prototype.enableJit = enableJit;
  }
}

const mips = (r: BareRunResult): number => (r.hostMs > 0 ? Number(r.instructions) / r.hostMs / 1000 : 0);

/** "pass", or what went wrong, named by tier when both ran. */
function status(runs: [string, BareRunResult | undefined][]): { text: string; failed: boolean } {
  const bad = runs.filter((e): e is [string, BareRunResult] => e[1] !== undefined && e[1].status !== "pass");
  if (!bad.length) return { text: "pass", failed: false };
  const why = (r: BareRunResult) => (r.status === "fail" ? `FAIL (exit code ${r.exitCode})` : `${r.status.toUpperCase()} (${r.message})`);
  return { text: bad.map(([tier, r]) => `${tier}: ${why(r)}`).join("; "), failed: true };
}

/** One program, one repetition: the table row, the JIT's row, and whether it failed. */
async function runProgram(name: string, elf: Uint8Array, o: Options): Promise<{ row: string[]; jitRow?: JitRow; settings?: string; failed: boolean }> {
  const opts: BareRunOptions = { timeoutMs: o.timeoutMs, ramMiB: 64 };
  const interp = o.interp ? await runBareElf(elf, opts) : undefined;
  const jit = o.jit ? await runWithJit(elf, opts, o.jitThreshold) : undefined;
  const st = status([["interpreter", interp], ["JIT", jit?.result]]);
  // A deterministic program retires the same instructions on both tiers; a difference says the JIT diverged.
  if (interp?.status === "pass" && jit?.result.status === "pass" && interp.instructions !== jit.result.instructions) {
    process.stderr.write(`bench:cpu: ${name}: ${interp.instructions} instructions interpreted, ${jit.result.instructions} with the JIT\n`);
  }
  const instructions = (interp ?? jit!.result).instructions.toString();
  const row = [name, st.text, instructions,
    ...(interp ? [(interp.hostMs / 1000).toFixed(2), mips(interp).toFixed(1)] : []),
    ...(jit ? [(jit.result.hostMs / 1000).toFixed(2), mips(jit.result).toFixed(1)] : []),
    ...(interp && jit ? [`${(jit.result.hostMs / interp.hostMs).toFixed(2)}x`] : [])];
  const jitRow = jit?.jit && { label: name, wallMs: jit.result.hostMs, instret: Number(jit.result.instructions), jit: jit.jit };
  return { row, jitRow, settings: jit?.settings, failed: st.failed };
}

async function main(): Promise<number> {
  const o = parseOptions();
  const outDir = buildPrograms();
  try {
    const rows: string[][] = [["program", "status", "instructions",
      ...(o.interp ? ["interp s", "interp MIPS"] : []), ...(o.jit ? ["JIT s", "JIT MIPS"] : []), ...(o.interp && o.jit ? ["JIT/interp"] : [])]];
    const jitRows: JitRow[] = [];
    let settings: string | undefined;
    let failures = 0;
    for (const name of o.selected) {
      const elf = new Uint8Array(readFileSync(join(outDir, `${name}.elf`)));
      for (let i = 0; i < o.repeat; i++) {
        const r = await runProgram(name, elf, o);
        rows.push(r.row);
        if (r.jitRow) jitRows.push(r.jitRow);
        settings ??= r.settings;
        if (r.failed) failures++;
      }
    }
    process.stdout.write(table(rows, 2) + "\n");
    if (jitRows.length) {
      process.stdout.write(`\nJIT (${settings}): compile time, its share of the run's host time, and where the instructions ran\n`);
      process.stdout.write(jitTable(jitRows, "program") + "\n");
    }
    if (failures > 0) {
      process.stderr.write(`bench:cpu: ${failures} run(s) did not pass\n`);
      return 1;
    }
    return 0;
  } finally {
    rmSync(outDir, { recursive: true, force: true });
  }
}

main().then((code) => process.exit(code), (e) => die((e as Error).stack ?? String(e)));
