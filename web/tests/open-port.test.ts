// Open port (Chromium, vite dev server): busybox httpd on a VM serves a page that the dashboard's "Open port" shows
// in a new tab, through the page's service worker and the lab network's gateway (no server outside the browser); a
// redirect stays under the port's prefix; a 20 MB file downloads with the guest's sha256; a port nobody listens on
// shows "connection refused".

import { describe, it, expect, beforeAll, afterAll } from "vitest";
import type { Page } from "playwright-core";
import { openEmptyLab, consoleCommand } from "./harness.ts";

describe("Open port: a VM's web server in the browser (vite dev server, Chromium)", () => {
  let lab: Awaited<ReturnType<typeof openEmptyLab>>;
  let page: Page;
  const url = (path: string) => new URL(path, lab.server.url).href;
  const run = (cmd: string, timeout?: number) => consoleCommand(page, "web1", cmd, timeout);

  beforeAll(async () => {
    lab = await openEmptyLab();
    page = lab.page;
    expect(await page.evaluate(() => window.tabvisor!.create({ name: "web1", ramMiB: 128 }))).toBeUndefined();
    await page.waitForFunction(() => window.tabvisor?.readyOf("web1") && window.tabvisor.stateOf("web1") === "running", undefined, { timeout: 90_000, polling: 100 });
    // the page's service worker carries the ports (index.html registers it)
    await page.evaluate(() => navigator.serviceWorker.ready.then(() => true));
    // a lease first: the gateway finds web1 by the name it sent with DHCP
    for (let i = 0; i < 100 && !/inet 10\./.test(await run("ip -4 -o addr show dev eth0")); i++) await new Promise((r) => setTimeout(r, 200));
    await run("mkdir -p /srv/docs && echo '<title>web1 home</title><h1>hello from web1</h1>' > /srv/index.html && echo docs > /srv/docs/index.html");
    await run("head -c 20000000 /dev/urandom > /srv/big.bin && httpd -h /srv -p 80", 60_000);
  }, 180_000);
  afterAll(async () => { await lab?.close(); });

  it("shows the VM's page in a new tab from the toolbar, and follows its redirect under the prefix", async () => {
    await page.locator('[data-testid="tab"][data-vm="web1"]').click();
    await page.getByTestId("open-port").click();
    await page.getByTestId("open-port-number").fill("80");
    const [tab] = await Promise.all([lab.browser.context.waitForEvent("page"), page.getByTestId("open-port-go").click()]);
    await tab.waitForLoadState("domcontentloaded");
    expect(new URL(tab.url()).pathname).toBe("/port/web1/80/");
    await tab.getByText("hello from web1").waitFor({ timeout: 30_000 });
    expect(await tab.title()).toBe("web1 home");
    // busybox httpd answers a directory without its slash with a redirect to /docs/: it stays on the VM's port
    await tab.goto(url("/port/web1/80/docs"));
    expect(new URL(tab.url()).pathname).toBe("/port/web1/80/docs/");
    expect((await tab.textContent("body"))?.trim()).toBe("docs");
    await tab.close();
  }, 120_000);

  it("downloads 20 MB from the VM with the guest's sha256", async () => {
    const want = (await run("sha256sum /srv/big.bin", 60_000)).split(" ")[0];
    const tab = await lab.browser.context.newPage();
    await tab.goto(url("/port/web1/80/"));
    const got = await tab.evaluate(async () => {
      const t0 = performance.now();
      const r = await fetch("/port/web1/80/big.bin");
      const b = await r.arrayBuffer();
      const d = new Uint8Array(await crypto.subtle.digest("SHA-256", b));
      return { status: r.status, length: b.byteLength, ms: performance.now() - t0, sha: Array.from(d, (x) => x.toString(16).padStart(2, "0")).join("") };
    });
    expect(got.status).toBe(200);
    expect(got.length).toBe(20_000_000);
    expect(got.sha).toBe(want);
    console.log(`20 MB through Open port in ${got.ms.toFixed(0)} ms (${(20 / (got.ms / 1000)).toFixed(1)} MB/s)`);
    await tab.close();
  }, 240_000);

  it("says 'connection refused' for a port nobody listens on, and names a VM that is not there", async () => {
    const tab = await lab.browser.context.newPage();
    const r = await tab.goto(url("/port/web1/8081/"));
    expect(r?.status()).toBe(502);
    expect(await tab.textContent("h1")).toMatch(/Connection refused: nothing listens on port 8081 of web1/);
    const r2 = await tab.goto(url("/port/nosuchvm/80/"));
    expect(r2?.status()).toBe(404);
    expect(await tab.textContent("body")).toMatch(/no VM named nosuchvm/);
    await tab.close();
    expect(lab.errors).toEqual([]);
  }, 60_000);
});
