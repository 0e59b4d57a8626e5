// Starts the JIT's compiler thread (jit-compile-worker.ts). A worker does not inherit the tsx loader of the
// thread that starts it; the TypeScript runs from the bundle cli/ts-cache.mjs makes and keeps (as the CLI's own
// commands do), which also leaves out the name-keeping wrappers tsx puts around every function: a third of the time
// a region took to build.
import { importTs } from "../../../cli/ts-cache.mjs";

await importTs(new URL("./jit-compile-worker.ts", import.meta.url).pathname);
