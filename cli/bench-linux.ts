// `npm run bench:linux`: boots the guest Linux on Tabvisor and times, in host wall time, what a user would wait
// for: booting to the shell prompt, a shell loop, hashing 32 MiB from a pipe, gzipping 4 MB, and how much host
// CPU the VM burns while the guest sits idle at its prompt. Then, where qemu-system-riscv64 is installed, the
// same on QEMU (plain TCG) as a reference, and a table with the ratio ours/QEMU.
// Exits non-zero if a step fails or prints a wrong result on Tabvisor.
//
//   npm run bench:linux [-- --repeat N] [--no-qemu] [--idle-ms N] [--timeout-ms N]
//   QEMU=/path/to/qemu-system-riscv64 picks another QEMU.

import { createHash } from "node:crypto";
import { parseArgs } from "node:util";
import { DEFAULT_IMAGES } from "../emulator-core/src/node/vm.ts";
import {
  findOpensbi, findQemu, QemuSession, TabvisorSession, type GuestSession,
} from "./bench/linux-guest.ts";

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

interface Sample { wallMs: number; instret?: bigint; busyMs?: number }

interface Run {
  /** step id ("boot", STEPS ids) → one sample per repetition */
  samples: Map<string, Sample[]>;
  idleCpu: number[];
  errors: string[];
}

const median = (xs: number[]): number => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const mips = (s: { wallMs: number; instret?: bigint }) =>
  s.instret !== undefined && s.wallMs > 0 ? Number(s.instret) / s.wallMs / 1000 : undefined;

function log(line: string): void { process.stdout.write(line + "\n"); }

async function measure(make: () => GuestSession, repeat: number, idleMs: number, timeoutMs: number): Promise<Run> {
  const run: Run = { samples: new Map(), idleCpu: [], errors: [] };
  const add = (id: string, s: Sample) => {
    if (!run.samples.has(id)) run.samples.set(id, []);
    run.samples.get(id)!.push(s);
  };
  const describe = (name: string, what: string, s: Sample) => {
    const parts = [`${name.padEnd(8)} ${what.padEnd(24)} ${(s.wallMs / 1000).toFixed(2).padStart(7)} s`];
    if (s.instret !== undefined) parts.push(`${s.instret.toString().padStart(11)} instr`, `${mips(s)!.toFixed(1).padStart(6)} MIPS`);
    if (s.busyMs !== undefined) parts.push(`busy ${((s.busyMs / s.wallMs) * 100).toFixed(0).padStart(3)}%`);
    log(parts.join("  "));
  };
  for (let rep = 0; rep < repeat; rep++) {
    const vm = make();
    try {
      const boot = await vm.boot(timeoutMs);
      add("boot", boot);
      describe(vm.name, "boot to prompt", boot);
      for (const step of STEPS) {
        const r = await vm.command(step.cmd, timeoutMs);
        const wrong = step.check(r.output);
        if (wrong) {
          run.errors.push(`${step.title}: ${wrong}; output:\n${r.output.slice(-400)}`);
          log(`${vm.name.padEnd(8)} ${step.title.padEnd(24)} WRONG OUTPUT: ${wrong}`);
          continue;
        }
        add(step.id, r);
        describe(vm.name, step.title, r);
      }
      await new Promise((r) => setTimeout(r, 500)); // let the guest settle at its prompt
      const idle = await vm.idle(idleMs);
      run.idleCpu.push(idle.cpuPercent);
      log(`${vm.name.padEnd(8)} ${"idle at the prompt".padEnd(24)} ${Number.isNaN(idle.cpuPercent) ? "not measurable" : `${idle.cpuPercent.toFixed(2)}% of a core over ${(idle.wallMs / 1000).toFixed(1)} s`}`);
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

function table(rows: string[][], leftCols = 1): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const fmt = (r: string[]) => r.map((cell, c) => (c < leftCols ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join("  ").trimEnd();
  return [fmt(rows[0]), widths.map((w) => "-".repeat(w)).join("  "), ...rows.slice(1).map(fmt)].join("\n");
}

async function main(): Promise<number> {
  let values;
  try {
    values = parseArgs({
      options: {
        repeat: { type: "string" },
        "no-qemu": { type: "boolean" },
        "idle-ms": { type: "string" },
        "timeout-ms": { type: "string" },
      },
      strict: true,
    }).values;
  } catch (e) {
    process.stderr.write(`bench:linux: ${(e as Error).message}\n`);
    return 2;
  }
  const repeat = values.repeat !== undefined ? Number(values.repeat) : 1;
  const idleMs = values["idle-ms"] !== undefined ? Number(values["idle-ms"]) : 5_000;
  const timeoutMs = values["timeout-ms"] !== undefined ? Number(values["timeout-ms"]) : 120_000;
  if (!(Number.isInteger(repeat) && repeat > 0)) { process.stderr.write("bench:linux: --repeat must be a positive integer\n"); return 2; }
  if (!(idleMs > 0)) { process.stderr.write("bench:linux: --idle-ms must be a positive number\n"); return 2; }
  if (!(timeoutMs > 0)) { process.stderr.write("bench:linux: --timeout-ms must be a positive number\n"); return 2; }

  const kernel = DEFAULT_IMAGES + "Image";
  const initrd = DEFAULT_IMAGES + "initramfs.cpio.gz";
  log(`Linux benchmark: ${RAM_MIB} MiB guest, ${kernel}${repeat > 1 ? `, medians of ${repeat} runs` : ""}`);

  const ours = await measure(() => new TabvisorSession({ ramMiB: RAM_MIB }), repeat, idleMs, timeoutMs);

  let qemu: Run | undefined;
  let qemuNote: string;
  const qemuBin = values["no-qemu"] ? undefined : findQemu();
  if (values["no-qemu"]) {
    qemuNote = "QEMU comparison skipped (--no-qemu)";
  } else if (!qemuBin) {
    qemuNote = process.env.QEMU
      ? `QEMU=${process.env.QEMU} does not exist: no QEMU comparison`
      : "qemu-system-riscv64 is not installed: no QEMU comparison (set QEMU=/path/to/it to use another)";
  } else {
    const bios = findOpensbi();
    const make = () => new QemuSession({ qemu: qemuBin, bios, kernel, initrd, ramMiB: RAM_MIB });
    qemuNote = `QEMU (TCG): ${make().commandLine.map((a) => (/\s/.test(a) ? `"${a}"` : a)).join(" ")}`;
    log(qemuNote);
    qemu = await measure(make, repeat, idleMs, timeoutMs);
  }

  const rows: string[][] = [["step", "ours s", "guest instr", "guest MIPS", "busy %", ...(qemu ? ["QEMU s", "ours/QEMU"] : [])]];
  for (const [id, title] of [["boot", "boot to prompt"], ...STEPS.map((s) => [s.id, s.title])]) {
    const o = ours.samples.get(id) ?? [];
    const q = qemu?.samples.get(id) ?? [];
    const wall = median(o.map((s) => s.wallMs));
    const instr = o.length && o[0].instret !== undefined ? median(o.map((s) => Number(s.instret))) : NaN;
    const busy = median(o.filter((s) => s.busyMs !== undefined).map((s) => (s.busyMs! / s.wallMs) * 100));
    const qWall = median(q.map((s) => s.wallMs));
    const f = (x: number, d: number) => (Number.isNaN(x) ? "-" : x.toFixed(d));
    rows.push([
      title, f(wall / 1000, 2), Number.isNaN(instr) ? "-" : Math.round(instr).toString(), f(instr / wall / 1000, 1), f(busy, 0),
      ...(qemu ? [f(qWall / 1000, 2), Number.isNaN(wall) || Number.isNaN(qWall) ? "-" : `${(wall / qWall).toFixed(1)}x`] : []),
    ]);
  }
  const idleOurs = median(ours.idleCpu);
  const idleQemu = qemu ? median(qemu.idleCpu) : NaN;
  const pct = (x: number) => (Number.isNaN(x) ? "-" : `${x.toFixed(2)}%`);
  rows.push(["idle CPU (% of a core)", pct(idleOurs), "", "", "", ...(qemu ? [pct(idleQemu), ""] : [])]);

  log("");
  log(table(rows));
  if (!qemu) log(qemuNote);
  if (!Number.isNaN(idleOurs)) log(`idle target < 1% of a core: ${idleOurs < 1 ? "met" : "NOT met"}`);
  for (const e of qemu?.errors ?? []) log(`note: QEMU: ${e}`);
  if (ours.errors.length) {
    for (const e of ours.errors) process.stderr.write(`bench:linux: ${e}\n`);
    return 1;
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e) => { process.stderr.write(`bench:linux: ${(e as Error).stack ?? e}\n`); process.exit(2); },
);
