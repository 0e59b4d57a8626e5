// Loads the compiled hart (emulator-core/build/hart.wasm) in Node.
import { readFileSync, existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { setFlagsFromString } from "node:v8";

// The JIT's regions carry branch hints (src/jit/wasm-module.ts branchHint: their exits are unlikely), which V8's
// optimizing tier uses to lay the exits out of the hot path. Chromium reads them by default; Node 20's V8 only
// behind this flag, which applies to the whole process (the compiler thread too) from the next module compiled.
setFlagsFromString("--experimental-wasm-branch-hinting");

let cached: WebAssembly.Module | undefined;

export const HART_WASM_PATH = fileURLToPath(new URL("../../build/hart.wasm", import.meta.url));

export function loadHartModule(): WebAssembly.Module {
  if (cached) return cached;
  if (!existsSync(HART_WASM_PATH)) {
    throw new Error(`${HART_WASM_PATH} is missing: run \`npm run build:core\` first`);
  }
  cached = new WebAssembly.Module(readFileSync(HART_WASM_PATH));
  return cached;
}
