// The dashboard's default network: every VM of the lab has a card on "lan", gets an address from its gateway by
// DHCP, reaches the others by name, and the Networks view shows the leases and the captured traffic.

import { describe, it, expect, beforeAll, afterAll } from "vitest";
import type { Page } from "playwright-core";
import { startDevServer, launchBrowser, type Served, type Browser } from "./harness.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("the dashboard's network (vite dev server, Chromium)", () => {
  let server: Served;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    server = await startDevServer();
    browser = await launchBrowser();
    page = browser.page;
    await page.goto(`${server.url}?lab=alpha,bravo`);
    await page.waitForFunction(() => ["alpha", "bravo"].every((n) => window.tabvisor?.readyOf(n)), null, { timeout: 60_000 });
  }, 120_000);
  afterAll(async () => { await browser?.close(); await server?.close(); });

  it("gives each VM a DHCP address on lan, resolves names, and shows it all in the Networks view", async () => {
    const send = (name: string, text: string) => page.evaluate(([n, t]) => window.tabvisor!.handleOf(n)!.sendInput(t), [name, text]);
    const textOf = (name: string) => page.evaluate((n) => window.tabvisor!.textOf(n), name);
    // DHCP runs in the background at boot: retry until the name resolves and the ping answers
    let out = "";
    for (let i = 0; i < 20 && !/2 packets received/.test(out); i++) {
      await send("alpha", "ping -c 2 -W 1 bravo\n");
      await sleep(3000);
      out = await textOf("alpha");
    }
    expect(out).toMatch(/2 packets transmitted, 2 packets received/);
    expect(out).toMatch(/PING bravo \(10\.0\.1\.\d+\)/);

    await page.locator('[data-testid="show-networks"]').click();
    const view = page.locator('[data-testid="networks-view"]');
    await view.waitFor();
    await page.waitForFunction(() => /ICMP/.test(document.querySelector('[data-testid="networks-view"]')?.textContent ?? ""), null, { timeout: 10_000 });
    // the switch's leases come with the view's first poll (the capture may come first)
    await expect.poll(() => view.innerText(), { timeout: 5_000 }).toMatch(/bravo\s+10\.0\.1\.\d+\s+[0-9a-f:]{17}\s+bound/);
    const text = await view.innerText();
    expect(text).toMatch(/alpha\s+10\.0\.1\.\d+\s+[0-9a-f:]{17}\s+bound/);
    expect(text).toMatch(/bravo\s+10\.0\.1\.\d+\s+[0-9a-f:]{17}\s+bound/);
    expect(text).toMatch(/DNS/);
    // back to the consoles: they kept their state
    await page.locator('[data-testid="show-networks"]').click();
    expect(await textOf("alpha")).toContain("2 packets received");
  }, 120_000);
});
