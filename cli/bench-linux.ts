// `npm run bench:linux`: boots the guest Linux on Tabvisor and times, in host wall time, what a user would wait
// for: booting to the shell prompt, a shell loop, hashing 32 MiB from a pipe, gzipping 4 MB, and how much host
// CPU the VM burns while the guest sits idle at its prompt. Tabvisor runs it twice, with the interpreter alone and
// with the JIT on (emulator-core/src/jit/README.md); then, where qemu-system-riscv64 is installed, the same on QEMU
// (plain TCG) as a reference. One table puts the three side by side with the ratios to QEMU; a second shows what
// the JIT did in each step (compile time and its share of the wall time, blocks compiled and evicted,
// invalidations, block entries, the share of instructions retired in compiled code, and every other counter the
// JIT keeps).
// Exits non-zero if a step fails or prints a wrong result on Tabvisor, with either tier.
//
// The initramfs reaches each guest as Tabvisor hands it over: unpacked by the host (NodeVm, the page), so the
// guest does not inflate it; QEMU gets the same cpio archive (a temporary file), so both boot the same bytes.
// --gz-initrd gives both the published gzip file instead, which each guest's kernel inflates itself.
//
//   npm run bench:linux [-- --repeat N] [--no-qemu] [--jit-only | --no-jit] [--jit-threshold N] [--idle-ms N]
//                       [--timeout-ms N] [--gz-initrd]
//   QEMU=/path/to/qemu-system-riscv64 picks another QEMU.

import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { gunzipSync } from "node:zlib";
import { DEFAULT_IMAGES } from "../emulator-core/src/node/vm.ts";
import {
  findOpensbi, findQemu, QemuSession, TabvisorSession, type GuestSession,
} from "./bench/linux-guest.ts";
import { jitTable, median, medianRow, type JitCounters, type JitRow } from "./bench/jit-stats.ts";
import { table } from "./bench/table.ts";

const RAM_MIB = 256;
const ZEROS_SHA256 = createHash("sha256").update(Buffer.alloc(32 << 20)).digest("hex");

interface Step {
  id: string;
  title: string;
  /** the line typed at the prompt (the end marker is appended to it) */
  cmd: string;
  /** why the output is wrong, or undefined when it is right */
  check(output: string): string | undefined;
}

const lines = (s: string) => s.split(/\r?\n/).map((l) => l.trim());

const STEPS: Step[] = [
  {
    id: "loop",
    title: "shell loop 200000",
    cmd: "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; echo $i",
    check: (out) => (lines(out).includes("200000") ? undefined : "the loop did not count to 200000"),
  },
  {
    id: "sha256",
    title: "dd 32M | sha256sum",
    cmd: "dd if=/dev/zero bs=1M count=32 | sha256sum",
    check: (out) => (out.includes(ZEROS_SHA256) ? undefined : "wrong sha256 of 32 MiB of zeros"),
  },
  {
    id: "gzip",
    title: "urandom 4M, gzip | wc",
    cmd: "head -c 4000000 /dev/urandom > /tmp/r; gzip -c /tmp/r | wc -c",
    check: (out) => {
      // random data does not compress: gzip adds a little framing to the 4000000 bytes
      const n = lines(out).filter((l) => /^\d+$/.test(l)).map(Number);
      return n.some((v) => v >= 4_000_000 && v < 4_100_000) ? undefined : "gzip -c | wc -c is not about 4000000";
    },
  },
];

interface Sample { wallMs: number; instret?: bigint; busyMs?: number; jit?: JitCounters }

interface Run {
  /** step id ("boot", STEPS ids) → one sample per repetition */
  samples: Map<string, Sample[]>;
  /** each repetition from the start of the boot to the end of the last step, with the totals at its end */
  sessions: Sample[];
  idleCpu: number[];
  errors: string[];
  /** the emulator's settings line (the JIT's), from the first repetition */
  settings?: string;
}

const mips = (s: { wallMs: number; instret?: bigint }) =>
  s.instret !== undefined && s.wallMs > 0 ? Number(s.instret) / s.wallMs / 1000 : undefined;

function log(line: string): void { process.stdout.write(line + "\n"); }

function describe(name: string, what: string, s: Sample): void {
  const parts = [`${name.padEnd(8)} ${what.padEnd(24)} ${(s.wallMs / 1000).toFixed(2).padStart(7)} s`];
  if (s.instret !== undefined) parts.push(`${s.instret.toString().padStart(11)} instr`, `${mips(s)!.toFixed(1).padStart(6)} MIPS`);
  if (s.busyMs !== undefined) parts.push(`busy ${((s.busyMs / s.wallMs) * 100).toFixed(0).padStart(3)}%`);
  log(parts.join("  "));
}

function addSample(run: Run, id: string, s: Sample): void {
  if (!run.samples.has(id)) run.samples.set(id, []);
  run.samples.get(id)!.push(s);
}

/** Boots, runs every step (checking its output), then measures the idle CPU: one repetition on one emulator. */
async function runSession(vm: GuestSession, run: Run, idleMs: number, timeoutMs: number): Promise<void> {
  const t0 = performance.now();
  const boot = await vm.boot(timeoutMs);
  addSample(run, "boot", boot);
  describe(vm.name, "boot to prompt", boot);
  run.settings ??= vm.settings?.();
  for (const step of STEPS) {
    const r = await vm.command(step.cmd, timeoutMs);
    const wrong = step.check(r.output);
    if (wrong) {
      run.errors.push(`${vm.name}: ${step.title}: ${wrong}; output:\n${r.output.slice(-400)}`);
      log(`${vm.name.padEnd(8)} ${step.title.padEnd(24)} WRONG OUTPUT: ${wrong}`);
      continue;
    }
    addSample(run, step.id, r);
    describe(vm.name, step.title, r);
  }
  // the session's totals stop here: the idle time after it would only dilute the JIT's compile share
  run.sessions.push({ wallMs: performance.now() - t0, ...vm.counters() });
  await new Promise((r) => setTimeout(r, 500)); // let the guest settle at its prompt
  const idle = await vm.idle(idleMs);
  run.idleCpu.push(idle.cpuPercent);
  log(`${vm.name.padEnd(8)} ${"idle at the prompt".padEnd(24)} ${Number.isNaN(idle.cpuPercent) ? "not measurable" : `${idle.cpuPercent.toFixed(2)}% of a core over ${(idle.wallMs / 1000).toFixed(1)} s`}`);
}

async function measure(make: () => GuestSession, repeat: number, idleMs: number, timeoutMs: number): Promise<Run> {
  const run: Run = { samples: new Map(), sessions: [], idleCpu: [], errors: [] };
  for (let rep = 0; rep < repeat; rep++) {
    const vm = make();
    try {
      await runSession(vm, run, idleMs, timeoutMs);
    } catch (e) {
      run.errors.push((e as Error).message);
      log(`${vm.name.padEnd(8)} FAILED: ${(e as Error).message.split("\n")[0]}`);
    } finally {
      await vm.close();
    }
    if (run.errors.length) break;
  }
  return run;
}

interface Options {
  repeat: number;
  idleMs: number;
  timeoutMs: number;
  noQemu: boolean;
  /** both guests get the gzip initramfs and inflate it themselves */
  gzInitrd: boolean;
  interp: boolean;
  jit: boolean;
  jitThreshold?: number;
}

/** The command line, or a message saying what is wrong with it. */
function parseOptions(): Options | string {
  let values;
  try {
    values = parseArgs({
      options: {
        repeat: { type: "string" },
        "no-qemu": { type: "boolean" },
        "jit-only": { type: "boolean" },
        "no-jit": { type: "boolean" },
        "jit-threshold": { type: "string" },
        "idle-ms": { type: "string" },
        "timeout-ms": { type: "string" },
        "gz-initrd": { type: "boolean" },
      },
      strict: true,
    }).values;
  } catch (e) {
    return (e as Error).message;
  }
  const repeat = values.repeat !== undefined ? Number(values.repeat) : 1;
  const idleMs = values["idle-ms"] !== undefined ? Number(values["idle-ms"]) : 5_000;
  // the JIT's shell loop took 90-150 s in its second milestone: a step's limit leaves room for that
  const timeoutMs = values["timeout-ms"] !== undefined ? Number(values["timeout-ms"]) : 300_000;
  const jitThreshold = values["jit-threshold"] !== undefined ? Number(values["jit-threshold"]) : undefined;
  if (!(Number.isInteger(repeat) && repeat > 0)) return "--repeat must be a positive integer";
  if (!(idleMs > 0)) return "--idle-ms must be a positive number";
  if (!(timeoutMs > 0)) return "--timeout-ms must be a positive number";
  if (values["jit-only"] && values["no-jit"]) return "--jit-only and --no-jit leave nothing to run";
  if (jitThreshold !== undefined && !(Number.isInteger(jitThreshold) && jitThreshold > 0)) return "--jit-threshold must be a positive integer";
  if (jitThreshold !== undefined && values["no-jit"]) return "--jit-threshold goes without --no-jit";
  return {
    repeat, idleMs, timeoutMs, jitThreshold, noQemu: values["no-qemu"] ?? false, gzInitrd: values["gz-initrd"] ?? false,
    interp: !values["jit-only"], jit: !values["no-jit"],
  };
}

/** QEMU's run, or undefined with the reason there is none (already said when it is a skip or a missing QEMU). */
async function measureQemu(o: Options, kernel: string, initrd: string): Promise<{ run?: Run; note: string }> {
  if (o.noQemu) return { note: "QEMU comparison skipped (--no-qemu)" };
  const qemuBin = findQemu();
  if (!qemuBin) {
    return {
      note: process.env.QEMU
        ? `QEMU=${process.env.QEMU} does not exist: no QEMU comparison`
        : "qemu-system-riscv64 is not installed: no QEMU comparison (set QEMU=/path/to/it to use another)",
    };
  }
  const bios = findOpensbi();
  const make = () => new QemuSession({ qemu: qemuBin, bios, kernel, initrd, ramMiB: RAM_MIB });
  const note = `QEMU (TCG): ${make().commandLine.map((a) => (/\s/.test(a) ? `"${a}"` : a)).join(" ")}`;
  log(note);
  return { run: await measure(make, o.repeat, o.idleMs, o.timeoutMs), note };
}

const STEP_TITLES: [string, string][] = [["boot", "boot to prompt"], ...STEPS.map((s): [string, string] => [s.id, s.title])];

const medianWall = (run: Run | undefined, id: string): number => median((run?.samples.get(id) ?? []).map((s) => s.wallMs));
const secs = (ms: number): string => (Number.isNaN(ms) ? "-" : (ms / 1000).toFixed(2));
const ratio = (a: number, b: number): string => (Number.isNaN(a) || Number.isNaN(b) ? "-" : `${(a / b).toFixed(2)}x`);
const pct = (x: number): string => (Number.isNaN(x) ? "-" : `${x.toFixed(2)}%`);

/** step | interpreter s | JIT s | QEMU s | JIT/QEMU | interp/QEMU | JIT/interp, for the emulators that ran. */
function comparisonTable(interp: Run | undefined, jit: Run | undefined, qemu: Run | undefined): string {
  const cols: { head: string; cell(id: string): string; idle?: Run }[] = [];
  if (interp) cols.push({ head: "interpreter s", cell: (id) => secs(medianWall(interp, id)), idle: interp });
  if (jit) cols.push({ head: "JIT s", cell: (id) => secs(medianWall(jit, id)), idle: jit });
  if (qemu) cols.push({ head: "QEMU s", cell: (id) => secs(medianWall(qemu, id)), idle: qemu });
  if (qemu && jit) cols.push({ head: "JIT/QEMU", cell: (id) => ratio(medianWall(jit, id), medianWall(qemu, id)) });
  if (qemu && interp) cols.push({ head: "interp/QEMU", cell: (id) => ratio(medianWall(interp, id), medianWall(qemu, id)) });
  if (jit && interp) cols.push({ head: "JIT/interp", cell: (id) => ratio(medianWall(jit, id), medianWall(interp, id)) });
  const rows = [["step", ...cols.map((c) => c.head)]];
  for (const [id, title] of STEP_TITLES) rows.push([title, ...cols.map((c) => c.cell(id))]);
  rows.push(["idle CPU (% of a core)", ...cols.map((c) => (c.idle ? pct(median(c.idle.idleCpu)) : ""))]);
  return table(rows);
}

/** What the JIT did in each step and over the whole session (medians over the repetitions). */
function jitStepTable(jit: Run): string | undefined {
  const row = (label: string, samples: Sample[]): JitRow | undefined =>
    medianRow(label, samples.flatMap((s) => (s.jit ? [{ wallMs: s.wallMs, instret: s.instret === undefined ? undefined : Number(s.instret), jit: s.jit }] : [])));
  const rows = [
    ...STEP_TITLES.map(([id, title]) => row(title, jit.samples.get(id) ?? [])),
    row("session (boot to last step)", jit.sessions),
  ].filter((r): r is JitRow => r !== undefined);
  return rows.length ? jitTable(rows, "step") : undefined;
}

async function main(): Promise<number> {
  const o = parseOptions();
  if (typeof o === "string") { process.stderr.write(`bench:linux: ${o}\n`); return 2; }

  const kernel = DEFAULT_IMAGES + "Image";
  const gz = DEFAULT_IMAGES + "initramfs.cpio.gz";
  // QEMU's copy of the cpio archive Tabvisor's guests get (NodeVm unpacks the same file the same way)
  const scratch = o.gzInitrd ? undefined : mkdtempSync(join(tmpdir(), "tabvisor-bench-"));
  const initrd = scratch ? join(scratch, "initramfs.cpio") : gz;
  if (scratch) writeFileSync(initrd, gunzipSync(readFileSync(gz)));
  log(`Linux benchmark: ${RAM_MIB} MiB guest, ${kernel}${o.repeat > 1 ? `, medians of ${o.repeat} runs` : ""}`);
  log(o.gzInitrd
    ? `initramfs: ${gz}, inflated by each guest's kernel (--gz-initrd)`
    : `initramfs: ${gz} unpacked by the host, the same cpio archive for every guest (--gz-initrd: the guests inflate it)`);

  const session = (name: string, jit?: { threshold?: number }) => () =>
    new TabvisorSession({ ramMiB: RAM_MIB, name, jit, unpackInitrd: !o.gzInitrd });
  let interp: Run | undefined, jit: Run | undefined, qemu: { run?: Run; note: string };
  try {
    interp = o.interp ? await measure(session("interp"), o.repeat, o.idleMs, o.timeoutMs) : undefined;
    jit = o.jit ? await measure(session("jit", { threshold: o.jitThreshold }), o.repeat, o.idleMs, o.timeoutMs) : undefined;
    qemu = await measureQemu(o, kernel, initrd);
  } finally {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  }

  log("");
  log(comparisonTable(interp, jit, qemu.run));
  if (!qemu.run) log(qemu.note);
  for (const [name, run] of [["interpreter", interp], ["JIT", jit]] as const) {
    const idle = run ? median(run.idleCpu) : NaN;
    if (!Number.isNaN(idle)) log(`idle target < 1% of a core (${name}): ${idle < 1 ? "met" : "NOT met"}`);
  }
  const jitRows = jit && jitStepTable(jit);
  if (jit && jitRows) {
    log("");
    log(`JIT (${jit.settings ?? "settings unknown"}): compile time, its share of each step's wall time, and where the instructions ran`);
    log(jitRows);
  }
  for (const e of qemu.run?.errors ?? []) log(`note: QEMU: ${e}`);
  const errors = [...(interp?.errors ?? []), ...(jit?.errors ?? [])];
  for (const e of errors) process.stderr.write(`bench:linux: ${e}\n`);
  return errors.length ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e) => { process.stderr.write(`bench:linux: ${(e as Error).stack ?? e}\n`); process.exit(2); },
);
