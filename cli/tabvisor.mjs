#!/usr/bin/env node
// `npx tabvisor vm [options]`: a Tabvisor VM with its console on this terminal; the options are those of
// `npm run vm -- [options]` (cli/vm.ts, `npx tabvisor vm --help`).
// `npx tabvisor lab FILE.lab.json [--check] [--run-snippets] ...`: tests a lab file headless, as `npm run lab`
// (cli/lab.ts).
//
// Plain JavaScript, and as little as possible before the guest starts, because start-up is what the user waits
// for: the emulator core is compiled only when emulator-core/build/hart.wasm is missing or older than its
// sources (file times, the rule emulator-core/build.mjs applies, checked here without loading the AssemblyScript
// compiler), and the TypeScript runs from a cached bundle instead of through the tsx loader (ts-cache.mjs).

import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { importTs } from "./ts-cache.mjs";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const COMMANDS = { vm: "cli/vm.ts", lab: "cli/lab.ts" };

function coreIsStale() {
  const wasm = join(ROOT, "emulator-core", "build", "hart.wasm");
  const sources = join(ROOT, "emulator-core", "assembly");
  let built;
  try { built = statSync(wasm).mtimeMs; } catch { return true; }
  // build.mjs's own rule: the assembly sources, build.mjs, and the tables it generates sources from (the hart
  // state block's layout, the semantics of the integer instructions) with their generators
  const core = (f) => statSync(join(ROOT, "emulator-core", f)).mtimeMs;
  const newest = Math.max(
    ...["build.mjs", "hart-state.mjs", "hart-state-gen.mjs", "semantics.mjs", "semantics-gen.mjs"].map(core),
    ...readdirSync(sources).map((f) => statSync(join(sources, f)).mtimeMs),
  );
  return built < newest;
}

const [command, ...args] = process.argv.slice(2);
const entry = COMMANDS[command];
if (!entry) {
  process.stderr.write(`usage: tabvisor vm [options]   (tabvisor vm --help lists the options)\n       tabvisor lab FILE.lab.json [--check] [--run-snippets] [--keep-going]\n`);
  process.exit(2);
}
if (coreIsStale()) {
  // the compiler's messages go to stderr: stdout is the guest's console
  // (node:child_process is loaded only here: with what it pulls in, it costs a few ms of every start)
  const { spawnSync } = await import("node:child_process");
  const r = spawnSync(process.execPath, [join(ROOT, "emulator-core", "build.mjs")], { stdio: ["ignore", 2, 2] });
  if (r.status !== 0) {
    process.stderr.write("tabvisor: the emulator core did not build (see above)\n");
    process.exit(r.status ?? 1);
  }
}
// the command reads its options from process.argv, as when it is run directly
process.argv = [process.argv[0], join(ROOT, entry), ...args];
await importTs(join(ROOT, entry));
