// The page's JIT compiler thread: one Worker that builds the regions of every VM of the page
// (web/workers/jit-compile-worker.ts), each VM's worker talking to it over a MessageChannel of its own. One thread
// rather than one per VM: its code, which the browser optimizes as it runs, is warm for every VM after the first,
// and the builds of eight busy VMs take one core, not eight threads' worth of the two a laptop may have.

import { warmupJobs } from "../../emulator-core/src/jit/region-compiler.ts";
import type { CompilerThreadMessage } from "../workers/jit-compile-worker.ts";

let worker: Worker | undefined;

function compilerWorker(): Worker {
  worker ??= new Worker(new URL("../workers/jit-compile-worker.ts", import.meta.url), { type: "module", name: "jit" });
  return worker;
}

const post = (m: CompilerThreadMessage, transfer: Transferable[] = []) => compilerWorker().postMessage(m, transfer);

/** A channel to the compiler thread for one VM's worker (VmInit.jitPort). */
export function compilerPort(): MessagePort {
  const { port1, port2 } = new MessageChannel();
  post({ port: port1 }, [port1]);
  return port2;
}

/** Has the compiler thread build regions of the guest's kernel while the page waits for its first VM, and throw
 *  them away: the first VM's regions are then built by optimized code (unoptimized, a boot's builds took about
 *  three times as long, and the browser's optimizing of them competed with the boot for the cores). A VM's first
 *  request ends the warm-up. */
export function warmCompiler(hart: WebAssembly.Module, kernel: Uint8Array): void {
  post({ warm: { hart, jobs: warmupJobs(kernel) } });
}
