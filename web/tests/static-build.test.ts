// The production build on a static host that sends no COOP/COEP headers: public/coi-serviceworker.js makes the
// page cross-origin isolated and the VM boots; with service workers blocked, the page says what is wrong.

import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { rmSync } from "node:fs";
import { buildStatic, serveStatic, launchBrowser, waitForPrompt, waitForText, typeLine, type Served } from "./harness.ts";

describe("the static build without isolation headers", () => {
  let dist: string;
  let server: Served;

  beforeAll(async () => {
    dist = await buildStatic();
    server = await serveStatic(dist);
  });
  afterAll(async () => {
    await server?.close();
    if (dist) rmSync(dist, { recursive: true, force: true });
  });

  it("becomes cross-origin isolated through the service worker and boots the VM", async () => {
    const res = await fetch(server.url);
    expect(res.headers.get("cross-origin-opener-policy")).toBeNull();
    const browser = await launchBrowser();
    try {
      const { page } = browser;
      await page.goto(server.url + "?lab=tabvisor"); // a lab of one VM named tabvisor
      await waitForPrompt(page, 40_000);
      expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
      expect(await page.evaluate(() => navigator.serviceWorker.controller !== null)).toBe(true);
      await typeLine(page, "echo $((6*7))");
      await waitForText(page, /^42$/m);
    } finally {
      await browser.close();
    }
  });

  it("explains the missing cross-origin isolation when the service worker cannot help", async () => {
    const browser = await launchBrowser({ blockServiceWorkers: true });
    try {
      const { page } = browser;
      await page.goto(server.url);
      const problem = page.getByTestId("problem");
      await problem.waitFor({ timeout: 15_000 });
      const text = await problem.innerText();
      expect(text).toMatch(/not cross-origin isolated, so SharedArrayBuffer is unavailable/);
      expect(text).toMatch(/Cross-Origin-Opener-Policy: same-origin/);
      expect(text).toMatch(/How to fix it/);
    } finally {
      await browser.close();
    }
  });
});
