// Not a test: measures page load → shell prompt, and the VM worker's cost while the guest idles at the prompt.
//   node --import tsx web/tests/measure.ts
// The worker's busy share comes from the stats the page reads (busyMs/idleMs deltas over ~5 s); the Chromium
// renderer's CPU time over the same window (from /proc) is printed beside it as a cross-check.

import { readFileSync, readdirSync } from "node:fs";
import { startDevServer, launchBrowser, waitForPrompt } from "./harness.ts";
import type { Page } from "playwright-core";

const TICK = 100; // USER_HZ: /proc/<pid>/stat counts in 1/100 s

function rendererCpuSeconds(): number {
  let total = 0;
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      if (!cmd.includes("chromium") || !cmd.includes("--type=renderer")) continue;
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      total += (Number(f[11]) + Number(f[12])) / TICK; // utime + stime
    } catch { /* gone */ }
  }
  return total;
}

async function loadToPrompt(page: Page, url: string): Promise<number> {
  await page.goto(url + "?lab=tabvisor"); // a lab of one VM named tabvisor
  await waitForPrompt(page, 60_000);
  // performance.now() counts from the navigation's start
  return page.evaluate(() => performance.now());
}

const server = await startDevServer();
try {
  for (const run of ["cold (first load: vite transforms the modules)", "warm (fresh browser, server already warm)"]) {
    const browser = await launchBrowser();
    try {
      const ms = await loadToPrompt(browser.page, server.url);
      console.log(`page load → prompt, ${run}: ${ms.toFixed(0)} ms (poll granularity 50 ms)`);
      if (run.startsWith("warm")) {
        await new Promise((r) => setTimeout(r, 3000)); // let the boot's tail settle
        const s1 = await browser.page.evaluate(() => window.tabvisor!.stats());
        const c1 = rendererCpuSeconds();
        const t1 = performance.now();
        await new Promise((r) => setTimeout(r, 5000));
        const s2 = await browser.page.evaluate(() => window.tabvisor!.stats());
        const c2 = rendererCpuSeconds();
        const wall = performance.now() - t1;
        const dBusy = s2!.busyMs - s1!.busyMs;
        const dIdle = s2!.idleMs - s1!.idleMs;
        console.log(`idle at the prompt over ${(wall / 1000).toFixed(1)} s: worker busy ${dBusy.toFixed(1)} ms, asleep ${dIdle.toFixed(0)} ms → ` +
          `${((100 * dBusy) / (dBusy + dIdle)).toFixed(2)}% of a core (busy/(busy+idle)); ` +
          `guest ${((s2!.instret - s1!.instret) / wall / 1000).toFixed(2)} MIPS`);
        console.log(`whole Chromium renderer process (page + worker) over the same window: ${((100 * (c2 - c1) * 1000) / wall).toFixed(1)}% of a core`);
      }
    } finally {
      await browser.close();
    }
  }
} finally {
  await server.close();
}
