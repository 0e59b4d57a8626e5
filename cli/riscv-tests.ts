// Runs a locally built riscv-tests suite (github.com/riscv-software-src/riscv-tests, built with its own Makefile:
// not part of this repository) against the hart, one bare-metal ELF at a time through the `vm` command's --elf mode
// (HTIF tohost: exit 0 is a pass), and prints the count. What README's "244 riscv-tests" means: the RV64 ISA tests
// of the extensions the hart implements (I, M, A, F, D, C, and the machine and supervisor tests), physical (-p-)
// and virtual-memory (-v-) environments, as the suite's isa/Makefile builds them.
//
//   npm run riscv-tests -- /path/to/riscv-tests/isa [--jobs N] [--timeout-ms MS] [--jit [--jit-threshold N]]
//
// --jit runs each test with the JIT on (vm --elf --jit); --jit-threshold 1 compiles every block on its first
// execution, so the compiled code runs nearly all of each test.

import { spawn } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
/** the suites of the extensions the hart implements (others in the directory, e.g. Zfh or Zba, are left out) */
const SUITES = /^rv64(ui|um|ua|uf|ud|uc|si|mi)-(p|v)-[\w-]+$/;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { jobs: { type: "string" }, "timeout-ms": { type: "string" }, jit: { type: "boolean" }, "jit-threshold": { type: "string" } },
});
const dir = positionals[0];
if (!dir) {
  process.stderr.write("usage: npm run riscv-tests -- DIR   (DIR: the isa/ folder of a built riscv-tests checkout)\n");
  process.exit(2);
}
let names: string[];
try {
  names = readdirSync(dir).filter((n) => SUITES.test(n) && statSync(join(dir, n)).isFile()).sort();
} catch (e) {
  process.stderr.write(`riscv-tests: cannot read ${dir}: ${(e as Error).message}\n`);
  process.exit(2);
}
if (names.length === 0) {
  process.stderr.write(`riscv-tests: no rv64 test programs in ${dir} (build them first: make -C isa in the riscv-tests checkout)\n`);
  process.exit(2);
}
const jobs = Math.max(1, Number(values.jobs ?? availableParallelism()) || 1);
const timeoutMs = Number(values["timeout-ms"] ?? 20_000);
const jitArgs = values.jit ? ["--jit", ...(values["jit-threshold"] !== undefined ? ["--jit-threshold", values["jit-threshold"]] : [])] : [];

/** Runs one test: its exit status and the last lines it printed. */
function runOne(name: string): Promise<{ name: string; code: number | null; tail: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [join(ROOT, "cli/tabvisor.mjs"), "vm", "--elf", resolve(dir, name), "--timeout-ms", String(timeoutMs), ...jitArgs],
      { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    const keep = (b: Buffer) => { out = (out + b.toString()).slice(-2000); };
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    child.on("close", (code) => done({ name, code, tail: out.trim().split("\n").slice(-2).join(" | ") }));
  });
}

const failed: { name: string; code: number | null; tail: string }[] = [];
let next = 0, passed = 0;
const t0 = performance.now();
await Promise.all(Array.from({ length: Math.min(jobs, names.length) }, async () => {
  while (next < names.length) {
    const r = await runOne(names[next++]);
    if (r.code === 0) passed++;
    else { failed.push(r); process.stdout.write(`FAIL ${r.name} (exit ${r.code}): ${r.tail}\n`); }
  }
}));
process.stdout.write(`${passed} passed, ${failed.length} failed, of the ${names.length} RV64 tests in ${dir}${jitArgs.length ? ` (${jitArgs.join(" ")})` : ""} ` +
  `(${((performance.now() - t0) / 1000).toFixed(1)} s)\n`);
process.exit(failed.length === 0 ? 0 : 1);
