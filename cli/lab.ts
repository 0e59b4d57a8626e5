// `npm run lab -- FILE.lab.json [--check] [--run-snippets] [--keep-going]` (or `npx tabvisor lab ...`): tests a lab
// file headless, as a teacher does before handing it out.
//
//   1. validates it (web/src/labs/validate.ts): every error as `path: reason`, exit status 2 when it is invalid;
//   2. builds it through the Node host (cli/lab-host.ts: NodeVm, VirtualSwitch, Gateway), printing progress;
//   3. with --run-snippets, goes through the steps in order and types each step's snippets into their VM's console
//      as the page's click does (each line and Enter, waiting for the shell's prompt), then runs that step's checks;
//      with --check (and without --run-snippets), runs every check of every step as the lab stands once built;
//      each check prints PASS or FAIL, and for a failure why and its hint.
//   --keep-going: go on after a failed check or snippet (default: stop at the first).
//   --console-exec: reach Debian VMs through their serial console instead of the agent (for a Debian image built
//     before its recipe installed the agent): setup, files and checks are typed as shell commands there.
//   --capture DIR: write each network's capture (its last 2000 frames) to DIR/NETWORK.pcap at the end.
//   --console: also copy the VMs' consoles to stderr (each line prefixed with the VM's name).
//   --timeout-ms N: give up after N ms (exit status 3).
// Exit status: 0 only when the lab is valid, was built, and every snippet and check asked for passed; 1 when a
// check or snippet failed or the build failed; 2 for an invalid lab file or bad options.

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { toPcap } from "../emulator-core/src/net/pcap.ts";
import { parseArgs } from "node:util";
import { formatLabError, parseLabText } from "../web/src/labs/validate.ts";
import type { FullLab } from "../web/src/labs/types.ts";
import { buildLab, runCheck } from "../web/src/lab-run/runner.ts";
import { NodeLabHost } from "./lab-host.ts";

function usage(): string {
  return "usage: npm run lab -- FILE.lab.json [--check] [--run-snippets] [--keep-going] [--console] [--console-exec] [--capture DIR] [--timeout-ms N]\n";
}

function fail(message: string, code = 2): never {
  process.stderr.write(`lab: ${message}\n`);
  process.exit(code);
}

const out = (s: string) => process.stdout.write(s + "\n");

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true, strict: true,
      options: {
        check: { type: "boolean" }, "run-snippets": { type: "boolean" }, "keep-going": { type: "boolean" },
        console: { type: "boolean" }, "console-exec": { type: "boolean" }, capture: { type: "string" }, "timeout-ms": { type: "string" }, help: { type: "boolean", short: "h" },
      },
    });
  } catch (e) {
    fail(`${(e as Error).message}\n${usage()}`);
  }
  const { values: args, positionals } = parsed;
  if (args.help) { process.stdout.write(usage()); return 0; }
  if (positionals.length !== 1) fail(`give one lab file\n${usage()}`);
  const file = positionals[0];
  if (args["timeout-ms"] !== undefined) {
    const ms = /^[0-9]+$/.test(args["timeout-ms"]) ? Number(args["timeout-ms"]) : NaN;
    if (!(ms > 0)) fail(`--timeout-ms must be a whole number of milliseconds above 0, not ${JSON.stringify(args["timeout-ms"])}`);
    setTimeout(() => { process.stderr.write(`lab: timed out after ${ms} ms\n`); process.exit(3); }, ms).unref();
  }

  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    fail(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`);
  }
  const v = parseLabText(text);
  if (!v.ok) {
    process.stderr.write(`lab: ${file} is not a valid lab file (${v.errors.length} error${v.errors.length === 1 ? "" : "s"}):\n`);
    for (const e of v.errors) process.stderr.write(`  ${formatLabError(e)}\n`);
    return 2;
  }
  const lab: FullLab = v.full;
  out(`lab: ${lab.title}: ${lab.networks.length} network(s), ${lab.vms.length} VM(s), ${lab.steps.length} step(s)`);

  const lineStart = new Map<string, boolean>();
  const host = new NodeLabHost({
    consoleExec: !!args["console-exec"],
    onConsole: args.console ? (vm, s) => {
      // prefix each console line with its VM's name
      let t = "";
      for (const ch of s.replace(/\r/g, "")) {
        if (lineStart.get(vm) !== false) t += `[${vm}] `;
        t += ch;
        lineStart.set(vm, ch === "\n");
      }
      process.stderr.write(t);
    } : undefined,
  });
  const t0 = performance.now();
  const secs = () => ((performance.now() - t0) / 1000).toFixed(1);
  try {
    await buildLab(lab, host, (p) => { if (p.doing) out(`  [${p.done + 1}/${p.total}] ${p.doing}`); });
  } catch (e) {
    process.stderr.write(`lab: ${(e as Error).message}\n`);
    host.removeAll();
    return 1;
  }
  out(`lab: built in ${secs()} s`);

  let failures = 0;
  const keepGoing = !!args["keep-going"];
  const stop = () => failures > 0 && !keepGoing;
  try {
    if (args["run-snippets"] || args.check) {
      for (const [i, step] of lab.steps.entries()) {
        if (stop()) break;
        const heading = `step ${i + 1}${step.title ? `: ${step.title}` : ""}`;
        if (args["run-snippets"]) {
          out(heading);
          for (const s of step.snippets) {
            if (stop()) break;
            out(`  ${s.vm}$ ${s.command.split("\n").join("\n    > ")}`);
            try {
              await host.typeSnippet(s.vm, s.command);
            } catch (e) {
              failures++;
              out(`  SNIPPET FAILED: ${(e as Error).message.split("\n")[0]}`);
            }
          }
        } else if (step.checks.length) {
          out(heading);
        }
        for (const c of step.checks) {
          if (stop()) break;
          const r = await runCheck(c, host);
          if (r.pass) {
            out(`  PASS ${c.title} (${c.vm})`);
          } else {
            failures++;
            out(`  FAIL ${c.title} (${c.vm}): ${r.detail}`);
            if (c.hint) out(`       hint: ${c.hint}`);
            if (r.output) out(`       output: ${r.output.split("\n").slice(-6).join("\n               ")}`);
          }
        }
      }
    }
  } finally {
    if (args.capture !== undefined) {
      try {
        mkdirSync(args.capture, { recursive: true });
        for (const name of host.networkNames()) {
          const file = join(args.capture, `${name}.pcap`);
          const frames = host.network(name)!.sw.capture.frames();
          writeFileSync(file, toPcap(frames));
          out(`lab: ${file}: the last ${frames.length} frames of ${name}`);
        }
      } catch (e) {
        process.stderr.write(`lab: the captures were not written: ${(e as Error).message}\n`);
      }
    }
    host.removeAll();
  }
  if (args["run-snippets"] || args.check) out(failures ? `lab: ${failures} failed (${secs()} s)` : `lab: everything passed (${secs()} s)`);
  return failures ? 1 : 0;
}

main().then((status) => {
  // let stdout drain before exiting (the VMs' timers would otherwise keep the process alive)
  const exit = () => process.exit(status);
  if (process.stdout.writableLength === 0) exit();
  else process.stdout.once("drain", exit);
}, (e) => fail(e instanceof Error ? e.stack ?? e.message : String(e), 1));
