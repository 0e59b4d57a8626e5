// The dashboard in Chromium: four VMs booting at once, consoles in tabs and side by side, pause/resume, the CPU cap,
// the idle cost of four VMs, the memory balloon, crashes (worker and guest), impossible settings, the lifecycle
// buttons, and the lab kept across visits (with a VM's JIT setting, and its meter once it runs with it). One page
// for the whole file (the lab ?lab=alpha,bravo,charlie,delta: four VMs of 64 MiB).

import { describe, it, expect, beforeAll, afterAll } from "vitest";
import type { Page } from "playwright-core";
import { startDevServer, launchBrowser, type Served, type Browser } from "./harness.ts";
import { chromiumCpuSeconds, cpuPercent } from "./proc-cpu.ts";

const VMS = ["alpha", "bravo", "charlie", "delta"];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("the dashboard (vite dev server, Chromium)", () => {
  let server: Served;
  let browser: Browser;
  let page: Page;
  const errors: string[] = [];

  const textOf = (name: string) => page.evaluate((n) => window.tabvisor!.textOf(n), name);
  const stateOf = (name: string) => page.evaluate((n) => window.tabvisor!.stateOf(n), name);
  const meters = (name: string) => page.evaluate((n) => window.tabvisor!.meters(n), name);
  const statsOf = (name: string) => page.evaluate((n) => window.tabvisor!.handleOf(n)!.stats(), name);
  const allReady = (names: string[], timeout = 60_000) => page.waitForFunction(
    (ns) => ns.every((n) => window.tabvisor?.readyOf(n) && window.tabvisor.stateOf(n) === "running"), names, { timeout, polling: 100 });

  /** Waits until the VM's terminal matches `re`. */
  async function waitText(name: string, re: RegExp, timeout = 20_000): Promise<string> {
    const t0 = Date.now();
    for (;;) {
      const t = await textOf(name);
      if (re.test(t)) return t;
      if (Date.now() - t0 > timeout) throw new Error(`timed out waiting for ${re} in ${name}'s console:\n${t.slice(-600)}`);
      await sleep(50);
    }
  }

  /** Shows the VM's tab and types a line into its console, as a person would. */
  async function typeIn(name: string, line: string): Promise<void> {
    await page.locator(`[data-testid="tab"][data-vm="${name}"]`).click();
    await page.locator(`[data-testid="console"][data-vm="${name}"] .xterm`).click();
    await page.keyboard.type(line);
    await page.keyboard.press("Enter");
  }

  /** The VM's CPU meter over the next `n` samples (one a second), after skipping `skip` (that may cover the past). */
  async function meanCpu(name: string, n: number, skip = 0): Promise<number[]> {
    const seen: number[] = [];
    let lastT = (await meters(name))?.t ?? 0;
    while (seen.length < n + skip) {
      await sleep(200);
      const m = await meters(name);
      if (m && m.t !== lastT) { lastT = m.t; seen.push(m.cpu); }
    }
    return seen.slice(skip);
  }

  beforeAll(async () => {
    server = await startDevServer();
    browser = await launchBrowser();
    page = browser.page;
    page.on("pageerror", (e) => errors.push(e.message));
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it("boots four VMs at once; each console shows its own hostname; typing in one tab reaches only that VM", async () => {
    await page.goto(server.url + "?lab=" + VMS.join(","));
    await allReady(VMS);
    expect(await page.locator('[data-testid="vm-card"]').count()).toBe(4);
    for (const name of VMS) {
      await waitText(name, new RegExp(`^${name}:~# `, "m"));
      expect(await textOf(name)).toMatch(new RegExp(`@@GUEST_READY@@ hostname=${name}\\b`));
    }
    await typeIn("bravo", "echo token-$((20+22))-$(hostname)");
    await waitText("bravo", /^token-42-bravo$/m);
    await typeIn("charlie", "echo other-$((1+2))-$(hostname)");
    await waitText("charlie", /^other-3-charlie$/m);
    for (const name of VMS) {
      const t = await textOf(name);
      if (name !== "bravo") expect(t).not.toMatch(/token-/);
      if (name !== "charlie") expect(t).not.toMatch(/other-/);
    }
    // a hidden console keeps taking output (its tab shows a badge) and keeps its scrollback across switches
    const bravoTab = page.locator('[data-testid="tab"][data-vm="bravo"]');
    expect(await bravoTab.getAttribute("data-unread")).toBe("0");
    await page.evaluate(() => window.tabvisor!.handleOf("bravo")!.sendInput("echo while-hidden-$((2*3))\n"));
    await waitText("bravo", /^while-hidden-6$/m);
    await expect.poll(() => bravoTab.getAttribute("data-unread")).toBe("1");
    await expect(bravoTab.locator('[data-testid="tab-badge"]').count()).resolves.toBe(1);
    await bravoTab.click();
    await expect.poll(() => bravoTab.getAttribute("data-unread")).toBe("0");
    const rows = page.locator('[data-testid="console"][data-vm="bravo"] .xterm-rows');
    await expect.poll(() => rows.innerText()).toMatch(/while-hidden-6/);
    expect(await textOf("bravo")).toMatch(/^token-42-bravo$/m);
  });

  it("pausing a VM drops its CPU meter to zero while the others run on; resume continues where it stopped", async () => {
    await page.locator('[data-testid="tab"][data-vm="alpha"]').click();
    await page.getByTestId("pause").click();
    await page.locator('[data-state="paused"]').waitFor();
    expect(await page.locator('[data-testid="vm-card"][data-vm="alpha"]').getAttribute("data-vm-state")).toBe("paused");
    const before = await statsOf("alpha");
    // typed while paused: waits in the input ring
    await typeIn("alpha", "echo resumed-$((40+2))");
    const cpu = await meanCpu("alpha", 2, 1);
    expect(cpu).toEqual([0, 0]);
    expect((await meters("alpha"))!.mips).toBe(0);
    const during = await statsOf("alpha");
    expect(during.instret).toBe(before.instret);
    expect(await textOf("alpha")).not.toMatch(/^resumed-42$/m);
    // the others keep running and answering
    await typeIn("delta", "echo alive-$(hostname)");
    await waitText("delta", /^alive-delta$/m);
    expect(await stateOf("bravo")).toBe("running");

    await page.locator('[data-testid="tab"][data-vm="alpha"]').click();
    await page.getByTestId("resume").click();
    await page.locator('[data-state="running"]').waitFor();
    await waitText("alpha", /^resumed-42$/m);
    const after = await statsOf("alpha");
    expect(after.instret).toBeGreaterThan(before.instret); // the same boot went on: no reset
    expect(after.uptimeMs).toBeGreaterThan(before.uptimeMs);
    expect(await textOf("alpha")).toMatch(/^alpha:~# echo resumed/m);
  });

  it("a CPU cap of 25% holds a busy loop near 25% of a core", async () => {
    await page.locator('[data-testid="tab"][data-vm="charlie"]').click();
    const capField = page.getByTestId("cpu-cap");
    await capField.fill("25");
    await capField.press("Enter");
    await expect.poll(() => page.evaluate(() => window.tabvisor!.handleOf("charlie")!.stats().then((s) => s.cpuCap))).toBe(25);
    await typeIn("charlie", "while :; do :; done");
    await sleep(1500);
    const capped = await meanCpu("charlie", 4);
    const mean = capped.reduce((a, b) => a + b, 0) / capped.length;
    console.log(`charlie, busy loop under a 25% cap: CPU meter ${capped.map((c) => c.toFixed(1)).join(", ")} (mean ${mean.toFixed(1)}%)`);
    expect(mean).toBeGreaterThan(15);
    expect(mean).toBeLessThan(35);
    expect((await meters("charlie"))!.throttled).toBeGreaterThan(300); // ms per second held back
    // lifted while it runs: the loop takes (most of) a core
    await capField.fill("100");
    await capField.press("Enter");
    await sleep(1200);
    const free = await meanCpu("charlie", 2);
    expect(Math.max(...free)).toBeGreaterThan(60);
    await page.locator('[data-testid="console"][data-vm="charlie"] .xterm').click();
    await page.keyboard.press("Control+c");
    await typeIn("charlie", "echo stopped-$((3*3))");
    await waitText("charlie", /^stopped-9$/m);
  });

  it("four idle VMs at their prompts cost the page under 5% of one core", async () => {
    // The page draws its dashboard (meters, sparklines, cursors) whatever the VMs do, and what that costs depends on
    // the machine's Chromium (software rendering here: 3.5% at one time, 7-10% at another for the same commit).
    // So the VMs' cost is measured against the same page with the four VMs paused.
    const measure = async () => {
      const c = chromiumCpuSeconds();
      const t = Date.now();
      const totals: number[] = [];
      for (let i = 0; i < 6; i++) {
        await sleep(1000);
        totals.push((await page.evaluate(() => window.tabvisor!.host()!.cpu)));
      }
      return { p: cpuPercent(c, chromiumCpuSeconds(), Date.now() - t), totals };
    };
    await page.evaluate((ns) => Promise.all(ns.map((n) => window.tabvisor!.handleOf(n)!.pause())), VMS);
    await sleep(1500);
    const paused = await measure();
    await page.evaluate((ns) => Promise.all(ns.map((n) => window.tabvisor!.handleOf(n)!.resume())), VMS);
    await sleep(2500); // let the resumed guests' timers settle
    const { p, totals } = await measure();
    const mean = totals.reduce((a, b) => a + b, 0) / totals.length;
    const show = (q: Record<string, number>) => Object.entries(q).map(([k, v]) => `${k} ${v.toFixed(1)}%`).join(", ");
    console.log(`4 idle VMs: VM workers by the page's meters ${mean.toFixed(2)}% of a core (samples ${totals.map((t) => t.toFixed(2)).join(", ")}); ` +
      `Chromium from /proc: ${show(p)}; with the VMs paused: ${show(paused.p)}`);
    expect(mean).toBeLessThan(5);
    // the page's own process (main thread, VM workers, drawing): what the idle VMs add to it. Since the dashboard
    // draws only what changed (issue 13), a page of paused VMs draws almost nothing, while running VMs' charts still
    // scroll once a second (here the busy loop of the test before is still in their 60 s window): that drawing is
    // most of the difference, and issue 13's open part. The whole page's idle cost is held in energy.test.ts.
    expect(p.renderer - paused.p.renderer).toBeLessThan(8);
  });

  it("the balloon takes memory back from a running guest and gives it back, visible in the meters", async () => {
    await page.locator('[data-testid="tab"][data-vm="delta"]').click();
    await expect.poll(async () => (await meters("delta"))?.memUsed, { timeout: 10_000 }).toBeDefined();
    const before = (await meters("delta"))!;
    expect(before.balloon).toBe(0);
    const field = page.getByTestId("balloon-mib");
    await field.fill("24");
    await field.press("Enter");
    await expect.poll(async () => (await meters("delta"))?.balloon, { timeout: 15_000 }).toBe(24);
    // the guest's own numbers follow (the next statistics after the inflation)
    await expect.poll(async () => (await meters("delta"))!.memFree!, { timeout: 10_000 }).toBeLessThan(before.memFree! - 20);
    const inflated = (await meters("delta"))!;
    expect(inflated.memAvail).toBe(64 - 24);
    expect(Math.abs(inflated.memUsed! - before.memUsed!)).toBeLessThan(4); // the balloon is not counted as used
    expect(Number(await page.getByTestId("balloon-actual").getAttribute("data-value"))).toBe(24);
    const st = await statsOf("delta");
    expect(st.balloon!.inflatedPages).toBe((24 * 1024) / 4);
    await typeIn("delta", "free -m | awk '/Mem:/ {print \"freemb=\" $4}'");
    await waitText("delta", /^freemb=\d+$/m);
    // and back
    await field.fill("0");
    await field.press("Enter");
    await expect.poll(async () => (await meters("delta"))?.balloon, { timeout: 15_000 }).toBe(0);
    await expect.poll(async () => (await meters("delta"))!.memFree!, { timeout: 10_000 }).toBeGreaterThan(before.memFree! - 4);
  });

  it("shows consoles side by side in the split view", async () => {
    await page.getByTestId("split-toggle").click();
    const panes = page.locator('[data-testid="console"]:visible');
    await expect.poll(() => panes.count()).toBe(4);
    const boxes = await Promise.all(VMS.map((n) => page.locator(`[data-testid="console"][data-vm="${n}"]`).boundingBox()));
    expect(new Set(boxes.map((b) => Math.round(b!.x))).size).toBe(2); // a 2 x 2 grid
    expect(new Set(boxes.map((b) => Math.round(b!.y))).size).toBe(2);
    await page.locator('[data-testid="console"][data-vm="delta"] .xterm').click();
    await page.keyboard.type("echo split-$(hostname)");
    await page.keyboard.press("Enter");
    await waitText("delta", /^split-delta$/m);
    expect(await textOf("alpha")).not.toMatch(/split-/);
    // each pane shows its own VM's screen
    await expect.poll(() => page.locator('[data-testid="console"][data-vm="bravo"] .xterm-rows').innerText()).toMatch(/bravo:~#/);
    await page.getByTestId("split-toggle").click();
    await expect.poll(() => panes.count()).toBe(1);
  });

  it("a crashed worker or a panicked guest shows as crashed with its last lines; the others keep running", async () => {
    // the worker of bravo throws (as a worker bug would): the page stops it and shows the crash
    await page.evaluate(() => window.tabvisor!.handleOf("bravo")!.injectFault());
    const card = page.locator('[data-testid="vm-card"][data-vm="bravo"]');
    await expect.poll(() => card.getAttribute("data-vm-state")).toBe("crashed");
    await expect.poll(() => card.locator('[data-testid="crash-lines"]').innerText().catch(() => "")).toMatch(/bravo:~#/);
    expect(await card.innerText()).toMatch(/the VM worker failed/);
    await typeIn("charlie", "echo unharmed-$(hostname)");
    await waitText("charlie", /^unharmed-charlie$/m);
    // powering it on again gives it a new worker
    await card.locator('[data-testid="card-start"]').click();
    await allReady(["bravo"], 30_000);

    // a worker that stops answering (its thread never yields, as a run loop with a bug would): shown as not
    // responding after a few seconds; Reset replaces the worker and the VM boots again
    await page.evaluate(() => { void window.tabvisor!.handleOf("bravo")!.injectHang(); });
    const hungAt = Date.now();
    await expect.poll(() => card.getAttribute("data-not-responding"), { timeout: 15_000 }).toBe("true");
    expect(Date.now() - hungAt).toBeLessThan(8_000);
    await page.locator('[data-testid="tab"][data-vm="bravo"]').click();
    await page.getByTestId("reset").click();
    await allReady(["bravo"], 30_000);
    expect(await card.getAttribute("data-not-responding")).toBeNull();
    await typeIn("bravo", "echo back-$(hostname)");
    await waitText("bravo", /^back-bravo$/m);
    // and Power off stops a worker that does not answer
    await page.evaluate(() => { void window.tabvisor!.handleOf("bravo")!.injectHang(); });
    await expect.poll(() => card.getAttribute("data-not-responding"), { timeout: 15_000 }).toBe("true");
    await page.getByTestId("power-off").click();
    await expect.poll(() => card.getAttribute("data-vm-state")).toBe("stopped");
    expect(await card.innerText()).not.toMatch(/not responding/);
    await card.locator('[data-testid="card-start"]').click();
    await allReady(["bravo"], 30_000);

    // a guest kernel panic (init exits): the VM stops running and shows the panic
    await page.getByTestId("new-vm").click();
    await page.getByTestId("create-name").fill("panicky");
    await page.getByTestId("create-bootargs").fill("rdinit=/bin/false");
    await page.getByTestId("create-submit").click();
    const pcard = page.locator('[data-testid="vm-card"][data-vm="panicky"]');
    await expect.poll(() => pcard.getAttribute("data-vm-state"), { timeout: 20_000 }).toBe("crashed");
    await expect.poll(() => pcard.innerText()).toMatch(/Kernel panic - not syncing/);
    await expect.poll(() => pcard.locator('[data-testid="crash-lines"]').innerText().catch(() => "")).toMatch(/Kernel panic/);
    const cpu = await meanCpu("panicky", 2, 1);
    expect(cpu).toEqual([0, 0]); // it does not spin
    await typeIn("delta", "echo fine-$(hostname)");
    await waitText("delta", /^fine-delta$/m);
    await page.locator('[data-testid="tab"][data-vm="panicky"]').click();
    await page.getByTestId("delete-vm").click();
    await page.getByTestId("delete-confirm").click();
    await expect.poll(() => pcard.count()).toBe(0);
  });

  it("refuses impossible settings with a message", async () => {
    await page.getByTestId("new-vm").click();
    const err = page.getByTestId("create-error");
    const tryCreate = async (fields: Record<string, string>) => {
      for (const [k, v] of Object.entries(fields)) await page.getByTestId(k).fill(v);
      await page.getByTestId("create-submit").click();
      return err.innerText();
    };
    expect(await tryCreate({ "create-name": "huge", "create-ram": "4096" })).toMatch(/at most 2048 MiB/);
    expect(await tryCreate({ "create-ram": "8" })).toMatch(/at least 32 MiB/);
    expect(await tryCreate({ "create-ram": "64", "create-name": "alpha" })).toMatch(/already a VM named alpha/);
    expect(await tryCreate({ "create-name": "Bad_Name!" })).toMatch(/lower-case letters/);
    expect(await tryCreate({ "create-name": "ok1", "create-cap": "150" })).toMatch(/CPU cap/);
    // a memory the browser will not give (as when a tab has used up its WebAssembly memories): the same refusal
    // a real failure gets (this one is simulated, so the tab's own memories stay as they are)
    await page.evaluate(() => {
      const real = WebAssembly.Memory;
      (window as unknown as { realMemory: typeof real }).realMemory = real;
      WebAssembly.Memory = function () { throw new RangeError("WebAssembly.Memory(): could not allocate memory"); } as unknown as typeof real;
    });
    try {
      expect(await tryCreate({ "create-cap": "100", "create-ram": "512" })).toMatch(/cannot give a VM 512 MiB now.*could not allocate memory/);
    } finally {
      await page.evaluate(() => { WebAssembly.Memory = (window as unknown as { realMemory: typeof WebAssembly.Memory }).realMemory; });
    }
    await page.keyboard.press("Escape");
    await expect.poll(() => page.getByTestId("create-dialog").count()).toBe(0);
    expect(await page.evaluate(() => window.tabvisor!.vms())).toEqual(VMS);
  });

  it("creates a VM from the dialog, stops and starts them all, and deletes one", async () => {
    const ram0 = Number(await page.getByTestId("host-ram").getAttribute("data-value"));
    await page.getByTestId("new-vm").click();
    await page.getByTestId("create-name").fill("echo1");
    await page.getByTestId("create-ram").fill("96");
    await page.getByTestId("create-disk").selectOption("16");
    await page.getByTestId("create-submit").click();
    await allReady(["echo1"], 30_000);
    await expect.poll(async () => Number(await page.getByTestId("host-ram").getAttribute("data-value"))).toBe(ram0 + 96);
    // its disk works and the disk meter sees the writes
    await typeIn("echo1", "dd if=/dev/zero of=/dev/vda bs=64k count=64 2>/dev/null; sync; echo wrote-$(hostname)");
    await waitText("echo1", /^wrote-echo1$/m);
    await expect.poll(async () => (await statsOf("echo1")).disk!.writeBytes).toBeGreaterThanOrEqual(4 * 1024 * 1024);

    await page.getByTestId("stop-all").click();
    const all = [...VMS, "echo1"];
    await page.waitForFunction((ns) => ns.every((n) => window.tabvisor!.stateOf(n) === "stopped"), all, { timeout: 10_000 });
    await expect.poll(async () => Number(await page.getByTestId("host-ram").getAttribute("data-value"))).toBe(0);
    await page.getByTestId("start-all").click();
    await allReady(all, 60_000);

    await page.locator('[data-testid="tab"][data-vm="echo1"]').click();
    await page.getByTestId("delete-vm").click();
    await page.getByTestId("delete-confirm").click();
    await expect.poll(() => page.evaluate(() => window.tabvisor!.vms())).toEqual(VMS);
    await expect.poll(async () => Number(await page.getByTestId("host-ram").getAttribute("data-value"))).toBe(4 * 64);
    expect(errors).toEqual([]);
  });

  it("a first visit boots the sample lab by itself, and the lab is kept across visits", async () => {
    await page.getByTestId("stop-all").click(); // the four VMs of the other tests rest meanwhile
    const first = await browser.context.newPage();
    try {
      await first.goto(server.url);
      const sample = ["web1", "web2", "db1"];
      await first.waitForFunction((ns) => window.tabvisor?.vms().join() === ns.join() &&
        ns.every((n) => window.tabvisor!.readyOf(n) && new RegExp(`^${n}:~# `, "m").test(window.tabvisor!.textOf(n))),
      sample, { timeout: 60_000, polling: 100 });
      expect(Number(await first.getByTestId("host-ram").getAttribute("data-value"))).toBe(64 + 64 + 128);
      await first.locator('[data-testid="tab"][data-vm="web2"]').click();
      await first.getByTestId("delete-vm").click();
      await first.getByTestId("delete-confirm").click();
      await first.locator('[data-testid="tab"][data-vm="db1"]').click();
      await first.getByTestId("cpu-cap").fill("50");
      await first.getByTestId("cpu-cap").press("Enter");
      // the JIT, a setting of the machine's make: the sample lab's VMs have it, and its meter shows what web1
      // compiles; turned off, web1 runs on with it until its next start, which the reload is
      await first.locator('[data-testid="tab"][data-vm="web1"]').click();
      await first.getByTestId("meter-jit").waitFor({ timeout: 60_000 });
      await expect.poll(() => first.getByTestId("meter-jit").locator('[data-live="meter-jit-sub"]').textContent(), { timeout: 30_000 }).toMatch(/^[1-9]\d* blocks compiled · /);
      expect(await first.getByTestId("jit-hint").textContent()).toBe("hot code compiled to WebAssembly");
      await first.getByTestId("jit").uncheck();
      expect(await first.getByTestId("jit-hint").textContent()).toMatch(/^off from the next start/);
      await sleep(300); // IndexedDB write
      await first.reload();
      await first.waitForFunction(() => window.tabvisor?.vms().join() === "web1,db1", undefined, { timeout: 30_000 });
      expect(await first.evaluate(() => window.tabvisor!.hv!.byName("db1")!.spec.cpuCap)).toBe(50);
      expect(await first.evaluate(() => window.tabvisor!.hv!.byName("web1")!.spec.jit === true)).toBe(false);
      expect(await first.evaluate(() => window.tabvisor!.hv!.byName("db1")!.spec.jit)).toBe(true);
      await first.waitForFunction(() => window.tabvisor!.readyOf("web1") && window.tabvisor!.readyOf("db1"), undefined, { timeout: 30_000 });
      // web1 (selected, the first) came back without the JIT: the interpreter, and no JIT meter
      await expect.poll(() => first.getByTestId("jit-hint").textContent(), { timeout: 30_000 }).toBe("off: the interpreter");
      expect(await first.getByTestId("meter-jit").count()).toBe(0);
    } finally {
      await first.close();
    }
  });
});
