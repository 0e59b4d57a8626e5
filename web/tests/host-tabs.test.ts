// The page's tabs as hosts (web/src/tabs/host-tabs.ts), in Node: numbers from Web Locks (here a lock manager with the
// browser's rules for the calls used), which tabs are open, requests between tabs with their answers and refusals,
// a tab that is gone, a number that frees itself.

import { describe, it, expect, afterEach } from "vitest";
import { HostTabs, holdLock, type LocksLike } from "../src/tabs/host-tabs.ts";

/** navigator.locks for one origin: exclusive locks, `ifAvailable`, `signal` to stop waiting, query(). */
class FakeLocks implements LocksLike {
  private readonly held = new Set<string>();
  private readonly waiting = new Map<string, (() => void)[]>();

  request(name: string, opts: { ifAvailable?: boolean; signal?: AbortSignal }, cb: (lock: unknown) => unknown): Promise<unknown> {
    const run = async () => {
      this.held.add(name);
      try { return await cb({ name }); } finally {
        this.held.delete(name);
        this.waiting.get(name)?.shift()?.();
      }
    };
    if (!this.held.has(name)) return run();
    if (opts.ifAvailable) return Promise.resolve(cb(null));
    return new Promise((resolve, reject) => {
      const q = this.waiting.get(name) ?? [];
      const go = () => resolve(run());
      q.push(go);
      this.waiting.set(name, q);
      opts.signal?.addEventListener("abort", () => { q.splice(q.indexOf(go), 1); reject(opts.signal!.reason); });
    });
  }

  async query(): Promise<{ held: { name: string }[] }> { return { held: [...this.held].map((name) => ({ name })) }; }
}

const open: HostTabs[] = [];
afterEach(() => { for (const t of open.splice(0)) t.dispose(); });
let runs = 0;

async function tabsOf(locks: FakeLocks, count: number): Promise<HostTabs[]> {
  const channel = `test-tabs-${process.pid}-${++runs}`;
  const out: HostTabs[] = [];
  for (let i = 0; i < count; i++) {
    const t = await HostTabs.open({ locks, channel, BroadcastChannel });
    if (!t) throw new Error("no tab");
    open.push(t);
    out.push(t);
  }
  return out;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("the page's tabs as hosts", () => {
  it("numbers tabs in order, each sees the others, and a closed tab's number is free again", async () => {
    const locks = new FakeLocks();
    const [a, b, c] = await tabsOf(locks, 3);
    expect([a.self.name, b.self.name, c.self.name]).toEqual(["Tab 1", "Tab 2", "Tab 3"]);
    await sleep(50); // the hellos
    expect(a.peers().map((p) => p.name)).toEqual(["Tab 2", "Tab 3"]);
    expect(c.peers().map((p) => p.n)).toEqual([1, 2]);
    let heard = 0;
    a.subscribe(() => heard++);
    b.dispose();
    await sleep(200); // the bye, then a look at the locks
    expect(a.peers().map((p) => p.name)).toEqual(["Tab 3"]);
    expect(heard).toBeGreaterThan(0);
    const [d] = await tabsOf(locks, 1);
    expect(d.self.name).toBe("Tab 2");
  });

  it("carries a request to one tab and its answer or refusal back; a tab that is gone does not answer", async () => {
    const locks = new FakeLocks();
    const [a, b, c] = await tabsOf(locks, 3);
    const asked: string[] = [];
    b.onRequest = async (from, body) => { asked.push(`b from ${from.name}`); return { echo: body }; };
    c.onRequest = async (from) => { asked.push(`c from ${from.name}`); throw new Error("Tab 3 has a VM named web1 already"); };
    expect(await a.request(2, { x: 1 })).toEqual({ echo: { x: 1 } });
    await expect(a.request(3, {})).rejects.toThrow("Tab 3 has a VM named web1 already");
    expect(asked).toEqual(["b from Tab 1", "c from Tab 1"]);
    await expect(a.request(9, {}, 100)).rejects.toThrow("Tab 9 did not answer (is it still open?)");
  });

  it("a tab without a handler yet says so", async () => {
    const [a] = await tabsOf(new FakeLocks(), 2);
    await expect(a.request(2, {})).rejects.toThrow("Tab 2 is not ready yet");
  });

  it("holdLock: the saved lab goes to one tab; another waits a little, then does without", async () => {
    const locks = new FakeLocks();
    const first = await holdLock(locks, "lab");
    expect(first).toBeDefined();
    expect(await holdLock(locks, "lab")).toBeUndefined();
    const t0 = Date.now();
    expect(await holdLock(locks, "lab", 100)).toBeUndefined();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(90);
    // a reloading tab lets go while the new page waits: it gets the lock
    setTimeout(() => first!.release(), 50);
    const second = await holdLock(locks, "lab", 1000);
    expect(second).toBeDefined();
    second!.release();
  });
});
