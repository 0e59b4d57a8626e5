// Live migration between two tabs of the page (Chromium, vite dev server): a VM counting in a loop and receiving a
// slow TCP stream from another VM moves from the first tab to the second through the dashboard's Migrate menu; the
// loop goes on without a reset, the stream completes in the new tab and its sha256 matches the sender's.

import { describe, it, expect, beforeAll, afterAll } from "vitest";
import type { Page } from "playwright-core";
import { startDevServer, launchBrowser, consoleCommand, type Served, type Browser } from "./harness.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The stream: a CGI script on the server that sends 30 blocks of 100 000 bytes of its file, one every 0.2 s (so
 *  the transfer lasts several seconds and is under way when the VM moves). */
const SLOW_CGI = [
  "#!/bin/sh", 'echo "Content-Type: application/octet-stream"', "echo", "i=0",
  "while [ $i -lt 30 ]; do dd if=/www/f bs=100000 skip=$i count=1 2>/dev/null; sleep 0.2; i=$((i+1)); done",
].join("\\n");

describe("live migration between tabs (vite dev server, Chromium)", () => {
  let server: Served;
  let browser: Browser;
  let a: Page;
  let b: Page;
  const errors: string[] = [];

  const textOf = (p: Page, name: string) => p.evaluate((n) => window.tabvisor!.textOf(n), name);
  const ready = (p: Page, names: string[], timeout = 60_000) => p.waitForFunction(
    (ns) => ns.every((n) => window.tabvisor?.readyOf(n) && window.tabvisor.stateOf(n) === "running"), names, { timeout, polling: 100 });

  const run = consoleCommand;
  /** The loop's count (a background job's output may come between: the number is tagged; the loop rewrites the
   *  file all the time, so a read may find it empty: ask again). */
  async function counter(p: Page): Promise<number> {
    for (let i = 0; i < 50; i++) {
      const n = Number(/N=(\d+)/.exec(await run(p, "mover", "echo N=$(cat /tmp/n 2>/dev/null)"))?.[1] ?? 0);
      if (n > 0) return n;
      await sleep(100);
    }
    return 0;
  }

  beforeAll(async () => {
    server = await startDevServer();
    browser = await launchBrowser();
    a = browser.page;
    a.on("pageerror", (e) => errors.push(`tab 1: ${e.message}`));
    await a.goto(server.url + "?lab=server,mover");
    await ready(a, ["server", "mover"]);
    b = await browser.context.newPage();
    b.on("pageerror", (e) => errors.push(`tab 2: ${e.message}`));
    await b.goto(server.url + "?lab="); // an empty lab: the second host
    await b.waitForFunction(() => window.tabvisor?.migrations !== undefined, undefined, { timeout: 60_000 });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it("each tab has its own name as a host", async () => {
    expect(await a.getByTestId("tab-name").innerText()).toBe("Tab 1");
    expect(await b.getByTestId("tab-name").innerText()).toBe("Tab 2");
  });

  it("moves a VM counting in a loop and receiving a TCP stream to the other tab: the loop goes on, the stream's sha256 matches", async () => {
    const sum = (await run(a, "server",
      `mkdir -p /www/cgi-bin && head -c 3000000 /dev/urandom > /www/f && printf '${SLOW_CGI}\\n' > /www/cgi-bin/slow && ` +
      "chmod +x /www/cgi-bin/slow && httpd -h /www && sha256sum /www/f", 30_000)).split(/\s+/)[0];
    expect(sum).toMatch(/^[0-9a-f]{64}$/);
    await run(a, "mover", "(i=0; while :; do i=$((i+1)); echo $i > /tmp/n; done) & true");
    await run(a, "mover", "(wget -q -O /tmp/got http://server/cgi-bin/slow; sha256sum /tmp/got; echo FET\"\"CHED) & true");
    // the stream is under way, the loop counts
    let got = 0;
    for (let i = 0; i < 100 && got === 0; i++) {
      got = Number(/S=(\d+)/.exec(await run(a, "mover", "echo S=$(wc -c < /tmp/got)"))?.[1] ?? 0);
      if (got === 0) await sleep(100);
    }
    expect(got).toBeGreaterThan(0);
    expect(got).toBeLessThan(3_000_000);
    const before = await counter(a);
    expect(before).toBeGreaterThan(0);

    // Migrate… → to Tab 2, as a user would
    await a.locator('[data-testid="tab"][data-vm="mover"]').click();
    await a.getByTestId("migrate").click();
    await a.locator('[data-testid="migrate-to"][data-tab="Tab 2"]').click();
    await b.waitForFunction(() => window.tabvisor!.vms().includes("mover") && window.tabvisor!.readyOf("mover") &&
      window.tabvisor!.stateOf("mover") === "running", undefined, { timeout: 60_000, polling: 100 });
    await a.waitForFunction(() => !window.tabvisor!.vms().includes("mover"), undefined, { timeout: 10_000 });
    expect(await a.getByTestId("notice-text").innerText()).toMatch(/^mover moved to Tab 2 in [\d.]+ m?s: the guest was paused for [\d.]+ m?s/);
    const report = await a.evaluate(() => window.tabvisor!.migrations!.last);
    expect(report?.vm).toBe("mover");
    expect(report!.rounds[0]).toBeGreaterThan(1000); // every non-zero page went while the guest ran
    console.log(`migration of a busy 64 MiB VM between tabs: ${report!.pageMs.toFixed(0)} ms in all, guest paused ` +
      `${report!.downtimeMs.toFixed(0)} ms (held at the source ${report!.heldMs.toFixed(0)} ms), ` +
      `${(report!.bytes / 1048576).toFixed(1)} MB, pages per round ${report!.rounds.join(", ")} then ${report!.finalPages}`);

    // in the new tab: the stream completes and matches, the loop counts on from where it was (no reset)
    await b.waitForFunction(() => /FETCHED/.test(window.tabvisor!.textOf("mover")), undefined, { timeout: 90_000, polling: 200 });
    const text = await textOf(b, "mover");
    // (the background job prints its sum wherever the cursor is, after a prompt say, and the terminal wraps it at
    // its width: the terminal's lines are read joined)
    expect(/([0-9a-f]{64})\s+\/tmp\/got/.exec(text.replace(/\n/g, ""))?.[1], text.slice(-1500)).toBe(sum);
    const after = await counter(b);
    expect(after).toBeGreaterThan(before);
    expect(await run(b, "mover", "hostname")).toBe("mover");
    // the new tab's VM is the same machine: its console shows where it came from
    expect(text).toMatch(/\[migrated from Tab 1\]/);
    expect(errors).toEqual([]);
  }, 240_000);

  it("a second tab opened on the saved lab starts empty, as another host; the first keeps the lab", async () => {
    const first = await browser.context.newPage();
    const second = await browser.context.newPage();
    try {
      await first.goto(server.url); // the saved lab (the sample lab on this profile's first visit)
      await first.waitForFunction(() => window.tabvisor?.vms().length === 3, undefined, { timeout: 60_000 });
      await second.goto(server.url);
      await second.waitForFunction(() => window.tabvisor?.hv !== undefined, undefined, { timeout: 60_000 });
      expect(await second.evaluate(() => window.tabvisor!.vms())).toEqual([]);
      expect(await second.getByTestId("notice-text").innerText()).toMatch(/^The saved lab is open in another tab: Tab \d starts empty, as another host/);
      expect(await first.evaluate(() => window.tabvisor!.vms())).toEqual(["web1", "web2", "db1"]);
      // the other tabs are in its Migrate menu
      await first.getByTestId("migrate").click();
      const names = await first.getByTestId("migrate-to").evaluateAll((els) => els.map((e) => e.getAttribute("data-tab")));
      expect(names).toContain(await second.getByTestId("tab-name").innerText());
      expect(names).toContain("Tab 1");
    } finally {
      await first.close();
      await second.close();
    }
  }, 120_000);

  it("refuses a VM whose name the other tab has, and the VM runs on", async () => {
    // alpha in tab 1, an alpha in tab 2 too: the offer is refused with the reason, nothing moves
    expect(await a.evaluate(() => window.tabvisor!.create({ name: "alpha" }))).toBeUndefined();
    expect(await b.evaluate(() => window.tabvisor!.create({ name: "alpha" }))).toBeUndefined();
    await ready(a, ["alpha"]);
    await a.locator('[data-testid="tab"][data-vm="alpha"]').click();
    await a.getByTestId("migrate").click();
    await a.locator('[data-testid="migrate-to"][data-tab="Tab 2"]').click();
    await expect.poll(() => a.getByTestId("notice-text").innerText(), { timeout: 20_000 })
      .toMatch(/^alpha could not be moved to Tab 2: Tab 2 has a VM named alpha already\. It runs on here\./);
    expect(await a.evaluate(() => window.tabvisor!.stateOf("alpha"))).toBe("running");
    expect(await run(a, "alpha", "echo still-$((40+2))")).toBe("still-42");
    expect(await b.evaluate(() => window.tabvisor!.vms().filter((n) => n === "alpha").length)).toBe(1);
    expect(errors).toEqual([]);
  }, 120_000);
});
