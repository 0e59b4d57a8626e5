// Not a test: measures machine state in the page (Chromium).
//   node --import tsx web/tests/measure-snapshots.ts           # against the dev server
//   node --import tsx web/tests/measure-snapshots.ts --build   # against a static build (what a deployment serves)
// - a new 64 MiB VM started from the template: from the VM's creation (its worker is made) and from the worker's
//   start call, to the shell answering a command typed as soon as the VM is starting; a VM booted instead for
//   comparison (a boot argument keeps it off the template)
// - a snapshot of a booted 128 MiB VM with a 64 MiB disk: file size, time, how long the guest was held
// - restoring it into its VM, and a fork of it (from the request to the copy answering with its own name)
// - live migration between two tabs of an idle 64 MiB VM and of one running a loop that writes memory, back and
//   forth: the guest's downtime (held at the source until the target's word that it runs it), the whole move as
//   the page sees it (offer, target worker made, RAM copied while the guest runs, the rest) and pages per round

import { startDevServer, buildStatic, serveStatic, launchBrowser, type Served } from "./harness.ts";
import { rmSync } from "node:fs";
import type { Page } from "playwright-core";

const useBuild = process.argv.includes("--build");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Creates a VM through the page's hook and times it to the answer of a command typed once it starts. */
async function startToAnswer(page: Page, name: string, over: Record<string, unknown>): Promise<{ total: number; fromStart: number; startedFrom?: string; startMs?: number }> {
  // (no named functions inside evaluate: tsx would wrap them in a helper the page does not have)
  return page.evaluate(async ([n, o]) => {
    const tv = window.tabvisor!;
    const t0 = performance.now();
    const why = tv.create({ name: n, ...o });
    if (why) throw new Error(why);
    const e = tv.hv!.byName(n)!;
    // the worker clears the console's input when it starts a machine: type once it says it is starting
    const tStart = await new Promise<number>((resolve) => {
      const off = e.handle.onStateChange((st) => { if (st === "booting") { off(); resolve(performance.now()); } });
    });
    e.handle.sendInput("echo ans-$((6*7))\n");
    while (!/^ans-42$/m.test(tv.textOf(n))) await new Promise((r) => setTimeout(r, 2));
    const t = performance.now();
    const st = await e.handle.stats();
    return { total: t - t0, fromStart: t - tStart, startedFrom: st.startedFrom, startMs: st.startMs };
  }, [name, over] as const);
}

async function run(page: Page, vm: string, cmd: string): Promise<void> {
  const marker = `done-${Math.random().toString(36).slice(2, 8)}`;
  await page.evaluate(([n, c]) => window.tabvisor!.handleOf(n)!.sendInput(c), [vm, `${cmd}; echo ${marker.slice(0, 3)}""${marker.slice(3)}\n`]);
  await page.waitForFunction(([n, m]) => new RegExp(`^${m}$`, "m").test(window.tabvisor!.textOf(n)), [vm, marker], { timeout: 60_000, polling: 20 });
}

let served: Served;
let dist: string | undefined;
if (useBuild) {
  dist = await buildStatic();
  served = await serveStatic(dist);
} else {
  served = await startDevServer();
}
const browser = await launchBrowser();
try {
  const page = browser.page;
  // an empty lab (the service worker of a static build reloads the page once to make it isolated)
  await page.goto(served.url + "?lab=");
  await page.waitForFunction(() => window.tabvisor?.hv !== undefined, undefined, { timeout: 60_000 });

  // warm-up: the first worker pays for loading (and, with the dev server, transforming) its modules
  await startToAnswer(page, "warm", {});
  const tpl: Awaited<ReturnType<typeof startToAnswer>>[] = [];
  for (let i = 1; i <= 5; i++) {
    tpl.push(await startToAnswer(page, `tpl${i}`, {}));
    await sleep(300);
  }
  console.log(`template start, 64 MiB (${tpl.map((t) => t.startedFrom).join(",")}), 5 VMs, median: ` +
    `VM created → answer ${median(tpl.map((t) => t.total)).toFixed(0)} ms; worker start → answer ${median(tpl.map((t) => t.fromStart)).toFixed(0)} ms; ` +
    `machine restored in ${median(tpl.map((t) => t.startMs ?? 0)).toFixed(0)} ms`);
  const boot = await startToAnswer(page, "booted", { bootArgs: "tabvisor.dhcp=bg" });
  console.log(`booted instead (${boot.startedFrom}): VM created → answer ${boot.total.toFixed(0)} ms; worker start → answer ${boot.fromStart.toFixed(0)} ms`);
  await page.evaluate(() => { const hv = window.tabvisor!.hv!; for (const e of [...hv.entries]) hv.remove(e.id); });
  await sleep(500);

  // a 128 MiB VM with a 64 MiB disk, some of which is written
  await page.evaluate(() => window.tabvisor!.create({ name: "big", ramMiB: 128, diskMiB: 64 }));
  await page.waitForFunction(() => window.tabvisor!.readyOf("big"), undefined, { timeout: 60_000 });
  await run(page, "big", "dd if=/dev/urandom of=/dev/vda bs=64k count=128 2>/dev/null; sync");
  await sleep(1000);
  const snap = await page.evaluate(async () => {
    const s = window.tabvisor!.snapshots!;
    const e = window.tabvisor!.hv!.byName("big")!;
    const out = [];
    for (let i = 0; i < 3; i++) {
      // how long the guest is held: the worker's own clock advances, the guest's instructions do not
      const r = await s.take(e.id);
      out.push({ ms: s.lastTiming!.ms, bytes: r!.size, id: r!.id, held: (await e.handle.stats()).lastHoldMs ?? 0 });
    }
    return out;
  });
  console.log(`snapshot of a 128 MiB VM with a 64 MiB disk (8 MiB written): ${(snap[2].bytes / 1048576).toFixed(1)} MB, ` +
    `${snap.map((s) => s.ms.toFixed(0)).join(", ")} ms; the guest held ${snap.map((s) => s.held.toFixed(0)).join(", ")} ms of it (while its state is copied: compression runs beside it)`);
  const restores = await page.evaluate(async (id) => {
    const s = window.tabvisor!.snapshots!;
    const out = [];
    for (let i = 0; i < 3; i++) { await s.restore(id); out.push(s.lastTiming!.ms); }
    return out;
  }, snap[2].id);
  console.log(`restore into its VM (open the file, build the new machine, swap): ${restores.map((t) => t.toFixed(0)).join(", ")} ms`);
  await run(page, "big", "echo back");

  const forks: { created: number; answered: number }[] = [];
  for (let i = 0; i < 3; i++) {
    forks.push(await page.evaluate(async () => {
      const tv = window.tabvisor!;
      const t0 = performance.now();
      const copy = (await tv.snapshots!.fork(tv.hv!.byName("big")!.id))!;
      const created = performance.now() - t0;
      const name = copy.spec.name;
      // the copy says it is ready once its guest has taken its new identity; then its shell is asked its name
      while (!tv.readyOf(name)) await new Promise((r) => setTimeout(r, 2));
      copy.handle.sendInput("echo I-am-$(hostname)\n");
      while (!new RegExp(`^I-am-${name}$`, "m").test(tv.textOf(name))) await new Promise((r) => setTimeout(r, 2));
      return { created, answered: performance.now() - t0 };
    }));
    await sleep(500);
  }
  console.log(`fork of the 128 MiB VM: copy made (state saved, worker created) in ${forks.map((f) => f.created.toFixed(0)).join(", ")} ms; ` +
    `copy answering with its own host name after ${forks.map((f) => f.answered.toFixed(0)).join(", ")} ms`);
  await page.evaluate(() => { const hv = window.tabvisor!.hv!; for (const e of [...hv.entries]) hv.remove(e.id); });

  // live migration: the VM goes to the second tab and back, three times each way
  const other = await browser.context.newPage();
  await other.goto(served.url + "?lab=");
  await other.waitForFunction(() => window.tabvisor?.migrations !== undefined, undefined, { timeout: 60_000 });
  const pages = [page, other];
  const migrate = async (from: Page, to: Page, vm: string) => {
    const target = await to.evaluate(() => window.tabvisor!.migrations!.tabs.self);
    const r = await from.evaluate(async ([n, t]) => {
      const tv = window.tabvisor!;
      await tv.migrations!.tabs.refresh();
      const report = await tv.migrations!.migrate(tv.hv!.byName(n)!.id, t);
      if (!report) throw new Error(tv.snapshots!.notice?.text ?? "the migration failed");
      return tv.migrations!.last!;
    }, [vm, target] as const);
    await to.waitForFunction((n) => window.tabvisor!.readyOf(n) && window.tabvisor!.stateOf(n) === "running", vm, { timeout: 60_000 });
    return r;
  };
  for (const [vm, busy] of [["idle", false], ["busy", true]] as const) {
    await page.evaluate((n) => window.tabvisor!.create({ name: n }), vm);
    await page.waitForFunction((n) => window.tabvisor!.readyOf(n), vm, { timeout: 60_000 });
    // busy: a loop that rewrites 8 MiB of memory over and over
    if (busy) await run(page, vm, "(dd if=/dev/zero of=/tmp/a bs=1M count=8 2>/dev/null; while :; do cp /tmp/a /tmp/b; done) & true");
    await sleep(1000);
    const reports = [];
    for (let i = 0; i < 6; i++) reports.push(await migrate(pages[i % 2], pages[(i + 1) % 2], vm));
    console.log(`migration between tabs, ${busy ? "busy" : "idle"} 64 MiB VM, 6 moves: guest paused ${reports.map((r) => r.downtimeMs.toFixed(0)).join(", ")} ms ` +
      `(median ${median(reports.map((r) => r.downtimeMs)).toFixed(0)}); whole move ${reports.map((r) => r.pageMs.toFixed(0)).join(", ")} ms; ` +
      `${(median(reports.map((r) => r.bytes)) / 1048576).toFixed(1)} MB; pages per round ${reports.map((r) => `${r.rounds.join("/")}+${r.finalPages}`).join("; ")}`);
    await pages[0].evaluate((n) => { const hv = window.tabvisor!.hv!; hv.remove(hv.byName(n)!.id); }, vm);
    await sleep(500);
  }
  await other.close();
} finally {
  await browser.close();
  await served.close();
  if (dist) rmSync(dist, { recursive: true, force: true });
}
