// One VM in its own Web Worker: VmHost (web/vm/vm-host.ts) exposed to the page through comlink. What is the
// worker's own is how results cross to the page: a snapshot file, a saved state's page buffers and a file read from
// the guest are transferred, not copied.

import * as Comlink from "comlink";
import { VmHost } from "../vm/vm-host.ts";
import { messagePortEnd, ThreadRegionCompiler } from "../../emulator-core/src/jit/region-compiler.ts";
import { bulkBuffers } from "../shared/saved-machine.ts";
import type { VmWorkerApi } from "../shared/protocol.ts";

// the JIT builds regions on the page's compiler thread (web/src/jit-compiler.ts), over the port the VM's init brings
let jitPort: MessagePort | undefined;
const host = new VmHost({
  jitCompiler: (hart) => {
    const port = jitPort;
    return port && new ThreadRegionCompiler(() => ({ end: messagePortEnd(port), stop: () => port.close() }), hart);
  },
});

const api: VmWorkerApi = {
  init: (init, onEvent) => {
    jitPort = init.jitPort;
    return host.init(init, onEvent);
  },
  start: () => host.start(),
  pause: () => host.pause(),
  resume: () => host.resume(),
  reset: () => host.reset(),
  powerOff: () => host.powerOff(),
  stats: () => host.stats(),
  setCpuCap: (p) => host.setCpuCap(p),
  setBalloon: (mib) => host.setBalloon(mib),
  setJit: (on) => host.setJit(on),
  injectFault: () => host.injectFault(),
  injectHang: () => host.injectHang(),
  async snapshot(info) {
    const file = await host.snapshot(info);
    return Comlink.transfer(file, [file.buffer as ArrayBuffer]);
  },
  async saveState() {
    const origin = await host.saveState();
    return Comlink.transfer(origin, bulkBuffers(origin.state));
  },
  restore: (from) => host.restore(from),
  migrateOut: (channel, to) => host.migrateOut(channel, to),
  resetDisk: () => host.resetDisk(),
  importDisk: (image) => host.importDisk(image),
  // each piece of an exported disk is transferred to the page, not copied
  exportDisk: (onChunk) => host.exportDisk((bytes) => onChunk(Comlink.transfer(bytes, [bytes.buffer as ArrayBuffer]))),
  agentExec: (command, opts) => host.agentExec(command, opts),
  agentPut: (path, data, opts) => host.agentPut(path, data, opts),
  async agentGet(path, opts) {
    const data = await host.agentGet(path, opts);
    return Comlink.transfer(data, [data.buffer as ArrayBuffer]);
  },
};

Comlink.expose(api);
