// `npm run vm -- --elf FILE [--timeout-ms N]`: runs a bare-metal RISC-V ELF with an HTIF tohost device.
// Exit status 0 when the program reports success; otherwise non-zero with a one-line reason.

import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { runBareElf } from "../emulator-core/src/bare.ts";

function fail(message: string, code = 2): never {
  process.stderr.write(`vm: ${message}\n`);
  process.exit(code);
}

async function main(): Promise<void> {
  let args;
  try {
    args = parseArgs({
      options: {
        elf: { type: "string" },
        "timeout-ms": { type: "string" },
        mem: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }).values;
  } catch (e) {
    fail((e as Error).message);
  }
  if (args.help) {
    process.stdout.write("usage: npm run vm -- --elf FILE [--timeout-ms N] [--mem MB]\n");
    return;
  }
  if (!args.elf) fail("nothing to run: give --elf FILE (booting Linux comes with the machine)");
  const timeoutMs = args["timeout-ms"] !== undefined ? Number(args["timeout-ms"]) : 60_000;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) fail(`--timeout-ms must be a positive number, not ${args["timeout-ms"]}`);
  const ramMiB = args.mem !== undefined ? Number(args.mem) : 64;
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(args.elf);
  } catch (e) {
    fail(`cannot read ${args.elf}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let r;
  try {
    r = await runBareElf(bytes, { timeoutMs, ramMiB, onConsole: (s) => process.stdout.write(s) });
  } catch (e) {
    fail((e as Error).message);
  }
  const mips = r.hostMs > 0 ? Number(r.instret) / r.hostMs / 1000 : 0;
  const stats = `${r.instret} instructions in ${r.hostMs.toFixed(0)} ms (${mips.toFixed(1)} MIPS)`;
  switch (r.status) {
    case "pass":
      process.stderr.write(`vm: pass: ${stats}\n`);
      return;
    case "fail":
      fail(`${args.elf}: failed test case ${r.exitCode} (${stats})`, 1);
    case "timeout":
      fail(`${args.elf}: ${r.message}`, 3);
    default:
      fail(`${args.elf}: ${r.message}`);
  }
}

main();
