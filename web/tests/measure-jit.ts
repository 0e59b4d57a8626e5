// Not a test: the JIT's speed through the page in Chromium (issue 14), beside the interpreter's. One VM of 256 MiB
// without a network card (bench:linux's machine) at a time in the production build, on an empty lab, made a second
// after the page loaded; for each tier, in host wall time: its boot (from create to its prompt) and the steps of
// `npm run bench:linux` typed into its console (a shell loop, hashing 32 MiB from a pipe, gzipping 4 MB), each
// timed in the page from typing the line to its end marker in the page's copy of the console.
//   node --import tsx web/tests/measure-jit.ts [--loop N] [--boots N]        (npm run bench:jit-page)
// The boot is the median of N boots (default 3), each in a page loaded afresh; the steps run on the last.
//
//   node --import tsx web/tests/measure-jit.ts --vms 8 [--loop N]
// Many VMs at once instead (issue 14: a page of 8 VMs with the JIT on stays responsive), for each tier: VMS busy VMs
// of 64 MiB booted together and then all running the shell loop (N iterations, default 30000) at once, beside one
// idle interpreter VM whose console echo is timed every second meanwhile (window.tabvisor.echoLatency: what a user
// typing into another VM feels); the page's main-thread tasks over 50 ms (PerformanceObserver "longtask"); the time
// until every loop ended; the JIT's compile time summed over the VMs; Chromium's memory (RSS) at the end.

import { startPreviewServer, launchBrowser } from "./harness.ts";
import type { Page } from "playwright-core";
import { loadavg } from "node:os";
import { chromiumRssMiB } from "./proc-cpu.ts";
import { createHash } from "node:crypto";

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
};
const LOOP = arg("--loop", 200000);
/** boots per tier (each in a freshly loaded page): the boot's figure is their median */
const BOOTS = arg("--boots", 3);
/** how long the page is left after it loaded before the VM is made */
const SETTLE_MS = 1000;
/** commands typed so far (each one's end marker is its own) */
let commands = 0;

const STEPS: { title: string; cmd: string; expect: RegExp }[] = [
  { title: `shell loop ${LOOP}`, cmd: `i=0; while [ $i -lt ${LOOP} ]; do i=$((i+1)); done; echo $i`, expect: new RegExp(`^${LOOP}$`, "m") },
  {
    title: "dd 32M | sha256sum", cmd: "dd if=/dev/zero bs=1M count=32 2>/dev/null | sha256sum",
    expect: new RegExp(`^${createHash("sha256").update(Buffer.alloc(32 << 20)).digest("hex")}`, "m"),
  },
  { title: "urandom 4M, gzip | wc", cmd: "head -c 4000000 /dev/urandom > /tmp/r; gzip -c /tmp/r | wc -c", expect: /^40\d{5}$/m },
];

const VMS = arg("--vms", 0);
if (VMS > 0) {
  await manyVms(VMS, arg("--loop", 30000));
  process.exit(0);
}

const server = await startPreviewServer();
const browser = await launchBrowser();
const { page } = browser;
const results = new Map<string, Map<string, number>>();
let failed = false;
try {
  for (const jit of [false, true]) {
    const tier = jit ? "JIT" : "interpreter";
    const times = new Map<string, number>();
    results.set(tier, times);
    const name = jit ? "jit" : "interp";
    // BOOTS boots, each in a page loaded afresh (its first VM); the steps run on the last one
    const boots: number[] = [];
    for (let b = 0; b < BOOTS; b++) boots.push(await bootInFreshPage(page, name, jit));
    console.log(`${tier}: boots to prompt ${boots.map((ms) => (ms / 1000).toFixed(3)).join(", ")} s`);
    times.set("boot to prompt", boots.sort((x, y) => x - y)[boots.length >> 1] / 1000);
    console.log(`${tier}: boot to prompt ${times.get("boot to prompt")!.toFixed(2)} s (median)`);
    for (const step of STEPS) {
      const { ms, out } = await timedCommand(page, name, step.cmd);
      const s = ms / 1000;
      if (!step.expect.test(out)) {
        console.log(`${tier}: ${step.title}: wrong output:\n${out.slice(-400)}`);
        failed = true;
      }
      times.set(step.title, s);
      console.log(`${tier}: ${step.title} ${s.toFixed(2)} s`);
    }
  }
  const titles = ["boot to prompt", ...STEPS.map((s) => s.title)];
  const w = Math.max(...titles.map((t) => t.length));
  console.log(`\nthrough the page (Chromium, production build), seconds; load average at the end ${loadavg()[0].toFixed(2)}`);
  console.log(`${"step".padEnd(w)}  interpreter     JIT  JIT/interp`);
  for (const t of titles) {
    const i = results.get("interpreter")!.get(t)!, j = results.get("JIT")!.get(t)!;
    console.log(`${t.padEnd(w)}  ${i.toFixed(2).padStart(11)}  ${j.toFixed(2).padStart(6)}  ${(j / i).toFixed(2).padStart(9)}x`);
  }
} finally {
  await browser.close();
  await server.close();
}
process.exit(failed ? 1 : 0);

/** Loads the page on an empty lab, waits SETTLE_MS, and boots a VM: the ms from create() to its prompt. */
async function bootInFreshPage(page: Page, name: string, jit: boolean): Promise<number> {
  await page.goto(server.url + "?lab="); // an empty lab, not saved
  await page.waitForFunction(() => window.tabvisor?.hv !== undefined, undefined, { timeout: 60_000 });
  // a VM made once the page has loaded (the JIT's compiler thread warms up meanwhile: web/src/jit-compiler.ts), as
  // a user makes one; timed in the page, from create() to the prompt in the page's copy of the console
  await new Promise((r) => setTimeout(r, SETTLE_MS));
  const boot = await page.evaluate(async ([nm, j]) => {
    const tb = window.tabvisor!;
    const t0 = performance.now();
    // the machine bench:linux boots in Node and on QEMU: no network card (with one, the guest's DHCP client runs
    // beside its init, about 5 million more instructions)
    const refused = tb.create({ name: nm as string, ramMiB: 256, jit: j as boolean, cards: [] });
    if (refused) return refused;
    const prompt = new RegExp(`^${nm}:~# `, "m");
    while (!prompt.test(tb.textOf(nm as string))) {
      if (performance.now() - t0 > 120_000) return "no prompt within 120 s";
      await new Promise((r) => setTimeout(r, 2));
    }
    return performance.now() - t0;
  }, [name, jit] as const);
  if (typeof boot === "string") throw new Error(`the VM did not boot: ${boot}`);
  return boot;
}

/** Types `cmd` into the VM's console and times it in the page, as bench:linux does in Node: from typing the line to
 *  its end marker in the page's copy of the console (looked at every 2 ms). Its output. */
async function timedCommand(page: Page, vm: string, cmd: string): Promise<{ ms: number; out: string }> {
  const n = ++commands;
  const r = await page.evaluate(async ([name, line, marker]) => {
    const tb = window.tabvisor!;
    const from = tb.textOf(name).length;
    const end = new RegExp(`^${marker}$`, "m");
    const t0 = performance.now();
    await tb.handleOf(name)!.sendInput(line);
    for (;;) {
      const text = tb.textOf(name);
      const m = end.exec(text.slice(from));
      if (m) return { ms: performance.now() - t0, out: text.slice(from, from + m.index) };
      if (performance.now() - t0 > 300_000) return { ms: NaN, out: text.slice(-600) };
      await new Promise((res) => setTimeout(res, 2));
    }
  }, [vm, `${cmd}; echo "@@E""ND${n}@@"\n`, `@@END${n}@@`] as const);
  if (Number.isNaN(r.ms)) throw new Error(`${vm}: no end to ${cmd} within 300 s:\n${r.out}`);
  return r;
}

async function manyVms(count: number, loop: number): Promise<void> {
  const server = await startPreviewServer();
  const browser = await launchBrowser();
  const { page } = browser;
  const rows: string[] = [];
  try {
    for (const jit of [false, true]) {
      await page.goto(server.url + "?lab=");
      await page.waitForFunction(() => window.tabvisor?.hv !== undefined, undefined, { timeout: 60_000 });
      await page.evaluate(() => {
        const w = window as unknown as { longTasks: number[] };
        w.longTasks = [];
        new PerformanceObserver((l) => { for (const e of l.getEntries()) w.longTasks.push(e.duration); }).observe({ type: "longtask" });
      });
      const names = Array.from({ length: count }, (_, k) => `busy${k + 1}`);
      const t0 = performance.now();
      for (const nm of [...names, "idle"]) {
        const refused = await page.evaluate(([n, j]) => window.tabvisor!.create({ name: n as string, ramMiB: 64, jit: j as boolean }), [nm, jit && nm !== "idle"] as const);
        if (refused) throw new Error(`VM ${nm} refused: ${refused}`);
      }
      await page.waitForFunction((ns) => ns.every((n) => window.tabvisor!.readyOf(n) && new RegExp(`^${n}:~# `, "m").test(window.tabvisor!.textOf(n))),
        [...names, "idle"], { timeout: 300_000, polling: 250 });
      const bootS = (performance.now() - t0) / 1000;
      await page.evaluate(() => { (window as unknown as { longTasks: number[] }).longTasks = []; });
      const t1 = performance.now();
      for (const nm of names) {
        await page.evaluate(([n, line]) => window.tabvisor!.handleOf(n)!.sendInput(line), [nm, `i=0; while [ $i -lt ${loop} ]; do i=$((i+1)); done; echo loop-$((i+0))-done\n`] as const);
      }
      const echoes: number[] = [];
      const done = () => page.evaluate(([ns, l]) => ns.every((n) => new RegExp(`^loop-${l}-done$`, "m").test(window.tabvisor!.textOf(n))), [names, loop] as const);
      while (!(await done())) {
        if (performance.now() - t1 > 600_000) throw new Error("the loops did not end within 10 minutes");
        echoes.push(await page.evaluate(() => window.tabvisor!.echoLatency("idle")).catch(() => Infinity));
        await new Promise((r) => setTimeout(r, 1000));
      }
      const loopsS = (performance.now() - t1) / 1000;
      const longTasks = await page.evaluate(() => (window as unknown as { longTasks: number[] }).longTasks);
      const compileMs = await page.evaluate(async (ns) => {
        let ms = 0;
        for (const n of ns) ms += (await window.tabvisor!.handleOf(n)!.stats()).jit?.compileMs ?? 0;
        return ms;
      }, names);
      echoes.sort((a, b) => a - b);
      const row = `| ${jit ? "JIT" : "interpreter"} | ${bootS.toFixed(1)} | ${loopsS.toFixed(1)} | ${echoes[echoes.length >> 1].toFixed(0)} / ${echoes[echoes.length - 1].toFixed(0)} (${echoes.length}) | ` +
        `${longTasks.length}, longest ${longTasks.length ? Math.max(...longTasks).toFixed(0) : 0} ms | ${(compileMs / 1000).toFixed(2)} | ${chromiumRssMiB().toFixed(0)} |`;
      console.log(row);
      rows.push(row);
    }
  } finally {
    await browser.close();
    await server.close();
  }
  console.log(`\n${count} busy VMs of 64 MiB and one idle interpreter VM in one page (Chromium, production build); load average at the end ${loadavg()[0].toFixed(2)}`);
  console.log("| busy VMs' tier | boot all, s | all loops of " + loop + ", s | idle VM's echo ms median / worst (samples) | page tasks over 50 ms | compile s, all VMs | Chromium RSS MiB |");
  console.log("|---|---|---|---|---|---|---|");
  for (const r of rows) console.log(r);
}
