// The JIT's compiler thread in the page: a Worker its VM's worker starts, which builds the VM's regions off the
// thread that runs the guest (emulator-core/src/jit/region-compiler.ts has the protocol).

import { serveRegionBuilds } from "../../emulator-core/src/jit/region-compiler.ts";

serveRegionBuilds({
  postMessage: (m) => postMessage(m),
  onMessage: (h) => addEventListener("message", (e) => h((e as MessageEvent).data)),
});
