// Runs the project's own bare-metal assembly tests (emulator-core/tests/asm/*.S) on the hart.
// beforeAll assembles them with tests/asm/build.sh (riscv64-linux-gnu-gcc, installed in CI);
// each program must end with status "pass".  Programs named xfail_exit<N>.S fail on purpose
// and must end with status "fail" and exit code N, so that a harness that cannot fail is caught.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runBareElf, type BareRunResult } from "../src/bare.ts";
import { Hart } from "../src/hart.ts";

const ASM_DIR = fileURLToPath(new URL("./asm/", import.meta.url));
const programs = readdirSync(ASM_DIR).filter((f) => f.endsWith(".S")).map((f) => f.slice(0, -2)).sort();
const expectedFailure = (name: string): number | undefined => {
  const m = /^xfail_exit(\d+)$/.exec(name);
  return m ? Number(m[1]) : undefined;
};

let outDir = "";

beforeAll(() => {
  outDir = mkdtempSync(join(tmpdir(), "tabvisor-asm-"));
  execFileSync("sh", [join(ASM_DIR, "build.sh"), outDir], { stdio: "pipe" });
});

afterAll(() => {
  if (outDir) rmSync(outDir, { recursive: true, force: true });
});

async function run(name: string): Promise<BareRunResult> {
  const elf = new Uint8Array(readFileSync(join(outDir, `${name}.elf`)));
  return runBareElf(elf, { timeoutMs: 30_000 });
}

function describeResult(name: string, r: BareRunResult): string {
  return `${name}: status=${r.status} exitCode=${r.exitCode} (failing case number) instructions=${r.instructions} ` +
    `message=${JSON.stringify(r.message)} console=${JSON.stringify(r.console)}`;
}

// Every program twice: on the interpreter, and with the JIT compiling every block on its first execution.
for (const jit of [false, true]) describe(`bare-metal assembly tests${jit ? " with the JIT on (threshold 1)" : ""}`, () => {
  if (jit) {
    beforeAll(() => { Hart.jitByDefault = { threshold: 1 }; });
    afterAll(() => { Hart.jitByDefault = undefined; });
  }
  it("has test programs", () => {
    expect(programs.filter((p) => expectedFailure(p) === undefined).length).toBeGreaterThan(5);
    expect(programs.some((p) => expectedFailure(p) !== undefined)).toBe(true);
  });

  for (const name of programs) {
    const failCode = expectedFailure(name);
    if (failCode === undefined) {
      it(`${name} passes`, async () => {
        const r = await run(name);
        expect(r.status, describeResult(name, r)).toBe("pass");
        expect(r.exitCode, describeResult(name, r)).toBe(0);
      });
    } else {
      it(`${name} fails with exit code ${failCode} (the harness can fail)`, async () => {
        const r = await run(name);
        expect(r.status, describeResult(name, r)).toBe("fail");
        expect(r.exitCode, describeResult(name, r)).toBe(failCode);
        expect(r.console, describeResult(name, r)).toContain(`FAIL case ${failCode}`);
      });
    }
  }
});
