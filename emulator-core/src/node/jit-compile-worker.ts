// The JIT's compiler thread in Node (a worker_threads Worker): one for the whole process, which builds the regions
// of every VM the process runs, each VM over a MessageChannel of its own (src/jit/region-compiler.ts has the
// protocol). Started through jit-compile-worker.mjs, which loads this file from the bundle the CLI uses.

import { MessageChannel, parentPort, Worker, workerData, type MessagePort } from "node:worker_threads";
import { RegionBuildServer, ThreadRegionCompiler, type MessageEnd, type RegionCompiler } from "../jit/region-compiler.ts";

/** What the process's thread is sent: a VM's channel. */
type ThreadMessage = { port: MessagePort };
/** the thread's workerData: this file serves only in a thread started as the compiler (not in any worker that
 *  imports it, a test runner's for one) */
const ROLE = "tabvisor-jit-compiler";

if (parentPort && workerData === ROLE) {
  const server = new RegionBuildServer();
  parentPort.on("message", (m: ThreadMessage) => server.serve(portEnd(m.port)));
}

function portEnd(port: MessagePort): MessageEnd {
  return {
    postMessage: (m) => port.postMessage(m),
    // (a port being listened to keeps the process alive: these do not)
    onMessage: (h) => { port.on("message", h); port.unref(); },
  };
}

let thread: Worker | undefined;

/** The process's compiler thread, started on first use. It does not keep the process alive. */
function compilerThread(): Worker {
  if (thread) return thread;
  const worker = (thread = new Worker(new URL("./jit-compile-worker.mjs", import.meta.url), { execArgv: [], workerData: ROLE }));
  worker.unref();
  // a failure of the thread itself (not of a build: those come back as results) leaves the regions then asked for
  // uncompiled: their guests go on interpreted; the next VM made gets a new thread
  worker.on("error", (e: Error) => {
    console.error(`the JIT's compiler thread failed: ${e.message}`);
    if (thread === worker) thread = undefined;
  });
  return worker;
}

/** The process's compiler thread's threadId (worker_threads), while it runs. */
export const compilerThreadId = (): number | undefined => thread?.threadId;

/** A RegionCompiler for a VM run by Node, over its own channel to the process's compiler thread, which is started
 *  now if it is not running yet: it loads while the guest starts, before any of its code is hot. (It does not warm
 *  up on code of its own as the page's does: in Node the VM starts at once, and a warm-up would compete with its
 *  boot.) */
export function nodeRegionCompiler(hart: WebAssembly.Module): RegionCompiler {
  compilerThread();
  return new ThreadRegionCompiler(() => {
    const { port1, port2 } = new MessageChannel();
    compilerThread().postMessage({ port: port2 } satisfies ThreadMessage, [port2]);
    return { end: portEnd(port1), stop: () => port1.close() };
  }, hart);
}
