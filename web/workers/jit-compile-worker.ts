// The JIT's compiler thread in the page (web/src/jit-compiler.ts starts it): it builds the regions of every VM of
// the page, each VM's worker over a MessagePort of its own (emulator-core/src/jit/region-compiler.ts has the
// protocol).

import { messagePortEnd, RegionBuildServer, type RegionJob } from "../../emulator-core/src/jit/region-compiler.ts";

/** What the page sends: a VM's channel, or code to warm up on. */
export type CompilerThreadMessage = { port: MessagePort } | { warm: { hart: WebAssembly.Module; jobs: RegionJob[] } };

const server = new RegionBuildServer();

addEventListener("message", (e) => {
  const m = (e as MessageEvent<CompilerThreadMessage>).data;
  if ("port" in m) server.serve(messagePortEnd(m.port));
  else server.warm(m.warm.hart, m.warm.jobs, (step) => setTimeout(step, 0));
});
