// The VM in the browser, end to end: the dev server, Debian's Chromium, the page boots the guest in its worker
// and its console answers typed commands.

import { describe, it, expect, beforeAll, afterAll } from "vitest";
import type { ConsoleSink } from "../src/vm-handle.ts";
import { startDevServer, launchBrowser, waitForPrompt, waitForText, typeLine, terminalText, type Served, type Browser } from "./harness.ts";

describe("the VM page (vite dev server, Chromium)", () => {
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

  it("boots to a shell prompt and answers typed commands", async () => {
    const { page } = browser;
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(server.url + "?lab=tabvisor"); // a lab of one VM named tabvisor (the dashboard's own tests: dashboard.test.ts)
    expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
    await waitForPrompt(page);
    await page.locator('[data-state="running"]').waitFor();

    await typeLine(page, "uname -m");
    await waitForText(page, /^riscv64$/m);
    await typeLine(page, "echo $((6*7))");
    await waitForText(page, /^42$/m);
    // the rows xterm renders in the DOM (drawn on the next frame) hold the same text
    await expect.poll(() => page.locator(".xterm-rows").innerText(), { timeout: 5000 }).toMatch(/riscv64[\s\S]*^42\s*$/m);
    expect(errors).toEqual([]);
  });

  it("pauses and resumes the VM, and the console still answers", async () => {
    const { page } = browser;
    await waitForPrompt(page);
    await page.getByTestId("pause").click();
    await page.locator('[data-state="paused"]').waitFor();
    const before = await page.evaluate(() => window.tabvisor!.stats());
    // typed while paused: the bytes wait in the input ring, the guest neither runs nor answers
    await typeLine(page, "echo resumed-$((40+2))");
    await new Promise((r) => setTimeout(r, 600));
    const after = await page.evaluate(() => window.tabvisor!.stats());
    expect(after!.state).toBe("paused");
    expect(after!.instret).toBe(before!.instret);
    expect(await terminalText(page)).not.toMatch(/^resumed-42$/m);

    await page.getByTestId("resume").click();
    await page.locator('[data-state="running"]').waitFor();
    await waitForText(page, /^resumed-42$/m);
    await typeLine(page, "echo still-$((7*6))");
    await waitForText(page, /^still-42$/m);
  });

  it("resets, powers off and powers on the VM", async () => {
    const { page } = browser;
    await waitForPrompt(page);
    await typeLine(page, "echo before-reset");
    await waitForText(page, /^before-reset$/m);
    await page.getByTestId("reset").click();
    await page.locator('[data-state="booting"], [data-state="running"]').first().waitFor();
    // the terminal is cleared and the guest boots again
    await expect.poll(() => terminalText(page), { timeout: 10_000 }).not.toMatch(/before-reset/);
    await waitForText(page, /^Run \/init as init process/m);
    await waitForPrompt(page);
    await page.locator('[data-state="running"]').waitFor();
    await typeLine(page, "echo $((6*7))-again");
    await waitForText(page, /^42-again$/m);
    await expect.poll(() => page.getByTestId("vm-stats").innerText(), { timeout: 5000 }).toMatch(/MIPS.*worker busy (<1|\d+)%/s);

    await page.getByTestId("power-off").click();
    await page.locator('[data-state="stopped"]').waitFor();
    await waitForText(page, /\[powered off\]/);
    await page.getByTestId("power-on").click();
    await page.locator('[data-state="running"]').waitFor({ timeout: 20_000 });
    await typeLine(page, "echo on-$((2*21))");
    await waitForText(page, /^on-42$/m);
  });

  it("copies the selection with Ctrl-Shift-C and pastes into the guest with Ctrl-Shift-V", async () => {
    const { page, context } = browser;
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: new URL(server.url).origin });
    await waitForPrompt(page);
    await typeLine(page, "echo copy-$((3+4))");
    await waitForText(page, /^copy-7$/m);
    // a double click selects the word under the pointer (xterm's own selection)
    const row = page.locator(".xterm-rows > div", { hasText: /^copy-7\s*$/ }).last();
    await row.waitFor();
    const box = (await row.boundingBox())!;
    await page.mouse.dblclick(box.x + 12, box.y + box.height / 2);
    await page.keyboard.press("Control+Shift+C");
    await expect.poll(() => page.evaluate(() => navigator.clipboard.readText())).toBe("copy-7");

    await page.evaluate(() => navigator.clipboard.writeText("echo pasted-$((5*5))\n"));
    await page.keyboard.press("Control+Shift+V");
    await waitForText(page, /^pasted-25$/m);
  });

  it("keeps the page responsive while the guest floods the console, and drops nothing", async () => {
    const { page } = browser;
    await waitForPrompt(page);
    // Frame gaps on the page while `yes` writes as fast as the guest can.
    await page.evaluate(() => {
      const w = window as unknown as { gaps: number[]; stopGaps: boolean };
      w.gaps = []; w.stopGaps = false;
      let last = performance.now();
      const tick = (t: number) => { w.gaps.push(t - last); last = t; if (!w.stopGaps) requestAnimationFrame(tick); };
      requestAnimationFrame(tick);
    });
    await typeLine(page, "yes flood");
    await waitForText(page, /^flood$/m);
    await new Promise((r) => setTimeout(r, 1500));
    const clickLatency = Date.now();
    await page.keyboard.press("Control+c");
    const gaps = await page.evaluate(() => {
      const w = window as unknown as { gaps: number[]; stopGaps: boolean };
      w.stopGaps = true;
      return w.gaps;
    });
    expect(Date.now() - clickLatency).toBeLessThan(1000);
    expect(gaps.length).toBeGreaterThan(20);
    expect(Math.max(...gaps.slice(1))).toBeLessThan(500);
    await typeLine(page, "echo after-$((1+1))");
    await waitForText(page, /^after-2$/m, 20_000);

    // Every line of a long listing arrives, in order (the scrollback keeps the last 5000 rows).
    await typeLine(page, "seq 1 20000; echo seq-$((3*3))");
    const text = await waitForText(page, /^seq-9$/m, 30_000);
    const lines = text.split("\n");
    const end = lines.lastIndexOf("20000");
    expect(end).toBeGreaterThan(0);
    const tail = lines.slice(end - 3999, end + 1).map(Number);
    expect(tail).toEqual(Array.from({ length: 4000 }, (_, i) => 16001 + i));
  });

  it("keeps the console's output while the page does not drain it, and the guest runs on (the backlog's limit: vm-host.test.ts)", async () => {
    const { page } = browser;
    await waitForPrompt(page);
    // Stop draining (as a hidden or busy page) and record every byte the console gets afterwards.
    await page.evaluate(() => {
      const vm = window.tabvisor!.vm!;
      const sink = vm.attachedConsole!;
      const w = window as unknown as { seen: string[]; counting: ConsoleSink; sink: ConsoleSink };
      const dec = new TextDecoder();
      w.seen = [];
      w.sink = sink;
      w.counting = { write: (data, done) => { w.seen.push(dec.decode(data, { stream: true })); sink.write(data, done); } };
      vm.attachConsole(undefined);
    });
    const seen = () => page.evaluate(() => (window as unknown as { seen: string[] }).seen.join(""));
    const reattach = () => page.evaluate(() => window.tabvisor!.vm!.attachConsole((window as unknown as { counting: ConsoleSink }).counting));
    // 41000 lines are ~275 KB: more than the 256 KiB output ring, and the ~2000 lines beyond it are within the
    // worker's backlog (at most 4000 lines: CONSOLE_BACKLOG_LINES)
    await typeLine(page, "seq 1 41000; echo seq-$((5*5))");
    await page.waitForFunction(() => window.tabvisor!.vm!.outputHeld, undefined, { timeout: 20_000, polling: 50 });
    const t1 = await page.evaluate(() => window.tabvisor!.stats());
    await new Promise((r) => setTimeout(r, 1000));
    const t2 = await page.evaluate(() => window.tabvisor!.stats());
    expect(t2!.instret).toBeGreaterThan(t1!.instret); // the guest is not held
    await reattach();
    await waitForText(page, /^seq-25$/m, 30_000);
    const numbers = (await seen()).split("\r\n").filter((l) => /^\d+$/.test(l)).map(Number);
    expect(numbers.length).toBe(41000); // nothing lost within the backlog
    expect(numbers.every((n, i) => n === i + 1)).toBe(true);

    await page.evaluate(() => window.tabvisor!.vm!.attachConsole((window as unknown as { sink: ConsoleSink }).sink));
  });

  it("draws nothing while the page is hidden; the guest runs on, and the console catches up when it shows again", async () => {
    const { page } = browser;
    await waitForPrompt(page);
    const setHidden = (hidden: boolean) => page.evaluate((h) => {
      if (h) Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "hidden" });
      else delete (document as unknown as { visibilityState?: string }).visibilityState;
      document.dispatchEvent(new Event("visibilitychange"));
    }, hidden);
    await setHidden(true);
    const before = await terminalText(page);
    await page.evaluate(() => window.tabvisor!.vm!.sendInput("seq 1 30000; echo hidden-$((6*7)); touch /tmp/hidden-done\n"));
    // the guest finishes while hidden (asked through its agent, not its console)
    await expect.poll(async () => new TextDecoder().decode((await page.evaluate(() =>
      window.tabvisor!.vm!.agentExec("test -e /tmp/hidden-done && echo yes || echo no"))).stdout).trim(), { timeout: 120_000, interval: 500 }).toBe("yes");
    expect(await terminalText(page)).toBe(before); // nothing was drawn meanwhile
    await setHidden(false);
    const text = await waitForText(page, /^hidden-42$/m, 30_000);
    expect(text).toMatch(/^30000$/m);
  });

  it("shows what is wrong when the guest images cannot be downloaded", async () => {
    const page = await browser.context.newPage();
    await page.route("**/images/Image", (route) => route.fulfill({ status: 404, body: "not found" }));
    await page.goto(server.url);
    const problem = page.getByTestId("problem");
    await problem.waitFor();
    const text = await problem.innerText();
    expect(text).toMatch(/could not be downloaded/);
    expect(text).toMatch(/images\/Image: the server answered 404/);
    expect(text).toMatch(/How to fix it/);
    await page.close();
  });
});
