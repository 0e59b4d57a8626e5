// `npm run bench:cpu`: builds the bare-metal CPU benchmarks (cli/bench/programs, with the
// riscv64-linux-gnu cross gcc), runs each on the hart through runBareElf and prints guest
// instructions, host seconds and guest MIPS.  Exits non-zero if a program does not pass.
//
//   npm run bench:cpu [-- --only NAME[,NAME]] [--timeout-ms N] [--repeat N]

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { runBareElf } from "../emulator-core/src/bare.ts";

const PROGRAMS = ["dhry", "memwalk", "fpkernel"] as const;
const BUILD_SH = fileURLToPath(new URL("./bench/programs/build.sh", import.meta.url));

function die(message: string): never {
  process.stderr.write(`bench:cpu: ${message}\n`);
  process.exit(2);
}

async function main(): Promise<number> {
  let values;
  try {
    values = parseArgs({
      options: {
        only: { type: "string" },
        "timeout-ms": { type: "string" },
        repeat: { type: "string" },
      },
      strict: true,
    }).values;
  } catch (e) {
    die((e as Error).message);
  }
  const timeoutMs = values["timeout-ms"] !== undefined ? Number(values["timeout-ms"]) : 300_000;
  const repeat = values.repeat !== undefined ? Number(values.repeat) : 1;
  if (!(timeoutMs > 0)) die(`--timeout-ms must be a positive number`);
  if (!(Number.isInteger(repeat) && repeat > 0)) die(`--repeat must be a positive integer`);
  const selected = values.only ? values.only.split(",").map((s) => s.trim()) : [...PROGRAMS];
  for (const name of selected) {
    if (!(PROGRAMS as readonly string[]).includes(name)) die(`unknown program ${name} (have: ${PROGRAMS.join(", ")})`);
  }

  const outDir = mkdtempSync(join(tmpdir(), "tabvisor-bench-"));
  try {
    try {
      execFileSync("sh", [BUILD_SH, outDir], { stdio: ["ignore", "pipe", "pipe"] });
    } catch (e) {
      const err = e as { stderr?: Buffer; message: string };
      die(`building the benchmarks failed (is riscv64-linux-gnu-gcc installed?)\n${err.stderr?.toString() ?? err.message}`);
    }

    const rows: string[][] = [["program", "status", "instructions", "host s", "guest MIPS"]];
    let failures = 0;
    for (const name of selected) {
      const elf = new Uint8Array(readFileSync(join(outDir, `${name}.elf`)));
      for (let i = 0; i < repeat; i++) {
        const r = await runBareElf(elf, { timeoutMs, ramMiB: 64 });
        const secs = r.hostMs / 1000;
        const mips = r.hostMs > 0 ? Number(r.instructions) / r.hostMs / 1000 : 0;
        let status: string = r.status;
        if (r.status !== "pass") {
          failures++;
          status = r.status === "fail" ? `FAIL (exit code ${r.exitCode})` : `${r.status.toUpperCase()} (${r.message})`;
        }
        rows.push([name, status, r.instructions.toString(), secs.toFixed(2), mips.toFixed(1)]);
      }
    }

    const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
    const fmt = (row: string[]) => row.map((cell, c) => (c === 0 || c === 1 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join("  ");
    process.stdout.write(fmt(rows[0]) + "\n" + widths.map((w) => "-".repeat(w)).join("  ") + "\n");
    for (const row of rows.slice(1)) process.stdout.write(fmt(row) + "\n");
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
