// The JIT's compiler thread in Node (a worker_threads Worker): builds regions for a VM's JIT tier off the thread
// that runs the guest (src/jit/region-compiler.ts has the protocol). Started through jit-compile-worker.mjs, which
// registers tsx's loader first: Node runs this TypeScript file in the worker as the CLI runs its own.

import { parentPort, Worker } from "node:worker_threads";
import { serveRegionBuilds, ThreadRegionCompiler, type RegionCompiler } from "../jit/region-compiler.ts";

if (parentPort) {
  const port = parentPort;
  serveRegionBuilds({ postMessage: (m) => port.postMessage(m), onMessage: (h) => port.on("message", h) });
}

/** A RegionCompiler on a thread of its own (started when first needed), for a VM run by Node. The thread does not
 *  keep the process alive. */
export function nodeRegionCompiler(hart: WebAssembly.Module): RegionCompiler {
  return new ThreadRegionCompiler(() => {
    const worker = new Worker(new URL("./jit-compile-worker.mjs", import.meta.url), { execArgv: [] });
    worker.unref();
    // a failure of the thread itself (not of a build: those come back as results) leaves regions uncompiled: the
    // guest goes on interpreted, and the error is reported once
    worker.on("error", (e: Error) => console.error(`the JIT's compiler thread failed: ${e.message}`));
    return {
      end: { postMessage: (m) => worker.postMessage(m), onMessage: (h) => worker.on("message", h) },
      stop: () => { void worker.terminate(); },
    };
  }, hart);
}
