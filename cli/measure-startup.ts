// How long a VM command takes from being started to the guest's shell: the first console byte, the guest's ready
// marker (@@GUEST_READY@@, printed when /init is done) and the shell prompt. Not a test: a measurement.
//
//   node --import tsx cli/measure-startup.ts                     npx tabvisor vm, 7 runs
//   node --import tsx cli/measure-startup.ts --runs 10 -- npm run -s vm
//   node --import tsx cli/measure-startup.ts --breakdown         also what npx, node and the bin cost on their own
//   node --import tsx cli/measure-startup.ts --cold              every run a first start (see below)
//
// Each run starts the command in its own process group with stdin a pipe (so nothing is typed), watches stdout
// and ends the group once the prompt shows. Times are wall clock from spawn(), in ms; the summary is min and median.
// A start uses what an earlier one left in node_modules/.cache/tabvisor/ (the bundled TypeScript, cli/ts-cache.mjs,
// and the template's decoded state, cli/template-cache.ts), as every start after the first does; --cold removes
// that directory before each run, so each pays for making them again (a first start, or one after an edit).

import { spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const MARKER = "@@GUEST_READY@@";
/** the guest's prompt ("tabvisor:~# "), possibly followed by the shell's cursor-position query */
const PROMPT = /:[^\n]*# (\x1b\[6n)?$/;

interface Marks { firstByte?: number; ready?: number; prompt?: number; exit?: number }

function once(cmd: string[], timeoutMs: number): Promise<Marks> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd[0], cmd.slice(1), { cwd: ROOT, stdio: ["pipe", "pipe", "ignore"], detached: true });
    const marks: Marks = {};
    let out = "";
    const end = () => { try { process.kill(-child.pid!, "SIGKILL"); } catch { /* gone already */ } };
    const timer = setTimeout(() => { end(); reject(new Error(`no prompt after ${timeoutMs} ms; output ends ${JSON.stringify(out.slice(-200))}`)); }, timeoutMs);
    child.stdout!.on("data", (d: Buffer) => {
      const t = performance.now() - t0;
      out += d.toString("latin1");
      marks.firstByte ??= t;
      if (marks.ready === undefined && out.includes(MARKER)) marks.ready = t;
      if (marks.ready !== undefined && marks.prompt === undefined && PROMPT.test(out)) {
        marks.prompt = t;
        clearTimeout(timer);
        end();
        resolve(marks);
      }
    });
    child.on("error", (e) => { clearTimeout(timer); reject(e); });
  });
}

/** Time until a command exits (for the parts that do not boot a guest). */
function untilExit(cmd: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd[0], cmd.slice(1), { cwd: ROOT, stdio: "ignore" });
    child.on("exit", () => resolve(performance.now() - t0));
    child.on("error", reject);
  });
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return `min ${s[0].toFixed(0).padStart(5)}  median ${s[Math.floor(s.length / 2)].toFixed(0).padStart(5)}`;
};

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    options: {
      runs: { type: "string", default: "7" }, breakdown: { type: "boolean" }, cold: { type: "boolean" },
      "timeout-ms": { type: "string", default: "30000" },
    },
    allowPositionals: true,
  });
  const runs = Math.max(1, Number(values.runs));
  const cmd = positionals.length ? positionals : ["npx", "tabvisor", "vm"];
  if (values.breakdown) {
    const parts: [string, string[]][] = [
      ["node -e 0", [process.execPath, "-e", "0"]],
      ["node --import tsx -e 0", [process.execPath, "--import", "tsx", "-e", "0"]],
      ["node cli/tabvisor.mjs (usage only)", [process.execPath, "cli/tabvisor.mjs"]],
      ["npx tabvisor (usage only)", ["npx", "tabvisor"]],
    ];
    for (const [label, c] of parts) {
      const times: number[] = [];
      for (let i = 0; i < runs; i++) times.push(await untilExit(c));
      console.log(`${label.padEnd(40)} exit    ${stats(times)}`);
    }
  }
  const all: Marks[] = [];
  for (let i = 0; i < runs; i++) {
    if (values.cold) rmSync(join(ROOT, "node_modules", ".cache", "tabvisor"), { recursive: true, force: true });
    all.push(await once(cmd, Number(values["timeout-ms"])));
  }
  const label = cmd.join(" ") + (values.cold ? " (cold)" : "");
  for (const key of ["firstByte", "ready", "prompt"] as const) {
    console.log(`${label.padEnd(40)} ${key.padEnd(9)} ${stats(all.map((m) => m[key]!))}`);
  }
}

main().catch((e) => { console.error(`measure-startup: ${e instanceof Error ? e.message : e}`); process.exit(1); });
