// Compiles the AssemblyScript hart to emulator-core/build/hart.wasm.
// The memory is imported and shared: the host creates it, so guest RAM is a
// SharedArrayBuffer that other workers (devices, the page, later other harts) can see.
import asc from "assemblyscript/asc";
import { mkdirSync, statSync, readdirSync } from "node:fs";
import { writeGeneratedState } from "./hart-state-gen.mjs";
import { writeGeneratedSemantics } from "./semantics-gen.mjs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "build", "hart.wasm");
const srcDir = join(here, "assembly");

// The hart state block's layout is generated from one table for both the hart and the TypeScript side.
writeGeneratedState();
// The integer instructions' semantics, for the interpreter (assembly/semantics.ts) and the JIT (src/jit/semantics.ts).
writeGeneratedSemantics();

function newestSource() {
  return Math.max(...readdirSync(srcDir).map((f) => statSync(join(srcDir, f)).mtimeMs), statSync(fileURLToPath(import.meta.url)).mtimeMs, statSync(join(here, "hart-state.mjs")).mtimeMs, statSync(join(here, "hart-state-gen.mjs")).mtimeMs,
    statSync(join(here, "semantics.mjs")).mtimeMs, statSync(join(here, "semantics-gen.mjs")).mtimeMs);
}
let upToDate = false;
try { upToDate = statSync(out).mtimeMs >= newestSource(); } catch {}
if (upToDate && !process.argv.includes("--force")) process.exit(0);

mkdirSync(dirname(out), { recursive: true });
const { error, stderr } = await asc.main([
  join(srcDir, "index.ts"),
  "--outFile", out,
  "-O3", "--noAssert", "--converge",
  "--runtime", "stub",
  // compiled blocks (src/jit) are installed in the hart's function table and entered from run() by call_indirect
  "--exportTable",
  "--importMemory", "--sharedMemory",
  "--initialMemory", "32", "--maximumMemory", "65536",
  "--enable", "threads",
  "--uncheckedBehavior", "always",
  "--memoryBase", "65536",
]);
if (error) {
  console.error(stderr.toString());
  process.exit(1);
}
console.log(`built ${out}`);
