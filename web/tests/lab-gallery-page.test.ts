// Every gallery lab in the page (Chromium), as a student meets it: listed in the Labs panel, opened and built, every
// check failing before anything was typed; then step by step its snippets clicked (typed into their VMs' consoles)
// and its checks passing. Labs on the Debian image run where it is built (public/images/debian, npm run
// images:debian; CI does not build it) and are skipped otherwise, saying why. The same labs run headless in
// lab-gallery.test.ts.

import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { startDevServer, launchBrowser, ROOT, type Served, type Browser } from "./harness.ts";
import { GALLERY } from "../src/labs/gallery/index.ts";
import { validateLab } from "../src/labs/validate.ts";

const DEBIAN = existsSync(join(ROOT, "public/images/debian/manifest.json"));

describe("the gallery in the page (vite dev server, Chromium)", () => {
  let server: Served;
  let browser: Browser;
  beforeAll(async () => {
    server = await startDevServer();
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  /** Clicks a snippet and waits for its VM's shell prompt to come back after what it typed. */
  async function snippet(page: Page, id: string, vm: string, timeoutMs: number): Promise<void> {
    const before = await page.evaluate((n) => window.tabvisor!.textOf(n).length, vm);
    await page.getByTestId(`snippet-${id}`).click();
    const prompt = new RegExp(`${vm}[^\\n]*[#$] $`);
    await expect.poll(async () => {
      const text = await page.evaluate((n) => window.tabvisor!.textOf(n), vm);
      return text.length > before && prompt.test(text);
    }, { timeout: timeoutMs, interval: 250 }).toBe(true);
  }

  /** Clicks a check and resolves with its result (pass or not, and the text shown). */
  async function check(page: Page, id: string): Promise<{ pass: boolean; text: string }> {
    const result = page.getByTestId(`check-result-${id}`);
    await page.getByTestId(`check-${id}`).click();
    await expect.poll(async () => (await page.getByTestId(`check-${id}`).innerText()) === "Check" && (await result.count()) === 1, { timeout: 330_000 }).toBe(true);
    return { pass: (await result.getAttribute("data-pass")) === "true", text: await result.innerText() };
  }

  it("lists every lab, saying which need the Debian image", async () => {
    const page = browser.page;
    await page.goto(server.url + "?lab=");
    await page.getByTestId("show-gallery").click();
    for (const g of GALLERY) {
      await page.getByTestId(`gallery-${g.id}`).waitFor();
      const open = page.getByTestId(`gallery-open-${g.id}`);
      expect(await open.count(), g.id).toBe(!g.needsDebian || DEBIAN ? 1 : 0);
    }
  });

  for (const g of GALLERY) {
    const skip = g.needsDebian && !DEBIAN;
    if (skip) console.warn(`lab-gallery-page.test.ts: ${g.id} skipped: the Debian image is not built here (npm run images:debian)`);
    it.skipIf(skip)(`${g.id}: opened from the list and built; its checks fail first and pass once its snippets ran`, async () => {
      const r = validateLab(g.lab);
      if (!r.ok) throw new Error(`${g.id} is not valid`);
      const lab = r.full;
      const page = await browser.context.newPage();
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(e.message));
      try {
        const t0 = Date.now();
        await page.goto(server.url + "?lab=&labs");
        await page.getByTestId(`gallery-open-${g.id}`).click();
        await page.waitForFunction(() => ["built", "failed"].includes(window.tabvisor?.labs?.session?.build.kind ?? ""), undefined, { timeout: 600_000, polling: 500 });
        const build = await page.evaluate(() => window.tabvisor!.labs!.session!.build);
        expect(build, JSON.stringify(build)).toEqual({ kind: "built" });
        const built = Date.now() - t0;
        expect((await page.evaluate(() => window.tabvisor!.vms())).sort()).toEqual(lab.vms.map((v) => v.name).sort());
        for (const [si, step] of lab.steps.entries()) {
          for (const ci of step.checks.keys()) {
            const c = await check(page, `${si}-${ci}`);
            expect(c.pass, `before any snippet, step ${si + 1} "${step.checks[ci].title}" passed`).toBe(false);
          }
        }
        for (const [si, step] of lab.steps.entries()) {
          for (const [i, s] of step.snippets.entries()) await snippet(page, `${si}-${i}`, s.vm, g.needsDebian ? 300_000 : 120_000);
          for (const [ci, c] of step.checks.entries()) {
            const res = await check(page, `${si}-${ci}`);
            expect(res.pass, `step ${si + 1}: "${c.title}" failed after its snippets: ${res.text}`).toBe(true);
          }
        }
        console.log(`lab-gallery-page: ${g.id}: built in ${(built / 1000).toFixed(1)} s, all in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
        expect(errors).toEqual([]);
      } finally {
        await page.close();
      }
    }, g.needsDebian ? 1_200_000 : 240_000);
  }
});
