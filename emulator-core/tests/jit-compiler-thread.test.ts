// The JIT's compiler thread: one builder serves every VM's channel (the page's thread, Node's process-wide one),
// a warm-up gives way to the first real job, and in Node two VMs' regions are built by the process's one thread.

import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { RegionBuildServer, warmupJobs, type MessageEnd, type RegionBuilt, type RegionJob } from "../src/jit/region-compiler.ts";
import { loadHartModule } from "../src/node/hart-module.ts";
import { DEFAULT_IMAGES, NodeVm } from "../src/node/vm.ts";
import { compilerThreadId } from "../src/node/jit-compile-worker.ts";

const kernel = new Uint8Array(readFileSync(DEFAULT_IMAGES + "Image"));

/** One side of an in-process channel to a server: what it posted, and a way to send it messages. */
function channel(server: RegionBuildServer): { send(m: unknown): void; got: RegionBuilt[] } {
  let handler: ((m: unknown) => void) | undefined;
  const got: RegionBuilt[] = [];
  const end: MessageEnd = { postMessage: (m) => got.push(m as RegionBuilt), onMessage: (h) => { handler = h; } };
  server.serve(end);
  return { send: (m) => handler!(m), got };
}

describe("the JIT's compiler thread", () => {
  it("serves several channels with one builder: each job's region comes back on its own channel", () => {
    const server = new RegionBuildServer();
    const a = channel(server), b = channel(server);
    const hart = loadHartModule();
    a.send({ hart });
    b.send({ hart });
    const [j1, j2, j3] = warmupJobs(kernel, 3);
    a.send({ ...j1, id: 1 });
    b.send({ ...j2, id: 1 });
    a.send({ ...j3, id: 2 });
    expect(a.got.map((r) => r.id)).toEqual([1, 2]);
    expect(b.got.map((r) => r.id)).toEqual([1]);
    for (const r of [...a.got, ...b.got]) {
      expect(r.error).toBeUndefined();
      expect(r.module).toBeInstanceOf(WebAssembly.Module);
      expect(r.instructions).toBeGreaterThan(0);
    }
    // a region is its page's: the same job on another channel builds the same blocks
    b.send({ ...j1, id: 2 });
    expect(b.got[1].starts).toEqual(a.got[0].starts);
  });

  it("warms up one region per step, and stops at the first job that comes", () => {
    const server = new RegionBuildServer();
    const steps: (() => void)[] = [];
    const jobs: RegionJob[] = warmupJobs(kernel, 10);
    expect(jobs).toHaveLength(10);
    expect(new Set(jobs.map((j) => j.pageVa)).size).toBe(10);
    server.warm(loadHartModule(), jobs, (step) => steps.push(step));
    steps.shift()!();
    steps.shift()!();
    expect(steps).toHaveLength(1); // each step asks for the next
    const a = channel(server);
    a.send({ hart: loadHartModule() });
    a.send({ ...jobs[5], id: 7 });
    expect(a.got.map((r) => r.id)).toEqual([7]);
    steps.shift()!();
    expect(steps).toHaveLength(0); // the job ended the warm-up
  });

  it("in Node, the VMs of a process share one compiler thread, and each gets its own regions", async () => {
    const a = new NodeVm({ ramMiB: 128, hostname: "a", jit: true, jitStartAfter: 0, keepOutput: false }).start();
    const thread = compilerThreadId();
    expect(thread).toBeGreaterThan(0);
    const b = new NodeVm({ ramMiB: 128, hostname: "b", jit: true, jitStartAfter: 0, keepOutput: false }).start();
    try {
      await Promise.all([a.waitFor("@@GUEST_READY@@", 60_000, 0), b.waitFor("@@GUEST_READY@@", 60_000, 0)]);
      for (const vm of [a, b]) {
        const s = vm.machine.hart.jit!.stats;
        expect(s.offThread).toBeGreaterThan(0);
        expect(s.compiled).toBeGreaterThan(0);
        expect(s.buildErrors).toBe(0);
      }
      expect(compilerThreadId()).toBe(thread);
    } finally {
      a.stop(); b.stop();
      await Promise.all([a.exited, b.exited]);
    }
  });
});

