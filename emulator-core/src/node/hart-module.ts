// Loads the compiled hart (emulator-core/build/hart.wasm) in Node.
import { readFileSync, existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

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
