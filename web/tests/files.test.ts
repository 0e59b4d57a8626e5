// Files in and out of a VM from the dashboard (Chromium, vite dev server), through the guest's agent: a file dropped
// on the VM's console lands in /root/uploads with the same sha256, a guest file comes out as a browser download with
// the same sha256, 50 MB each way go through while the page keeps drawing frames, and a path that does not exist
// gives a message instead of a download.

import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { JSHandle, Page } from "playwright-core";
import { openEmptyLab, dropFile } from "./harness.ts";

describe("files in and out of a VM (vite dev server, Chromium)", () => {
  let lab: Awaited<ReturnType<typeof openEmptyLab>>;
  let page: Page;

  /** A command's output in the guest, through its agent: the console may carry kernel messages in between (eth0's
   *  link coming up just after boot, say). */
  const guest = async (cmd: string, timeoutMs = 30_000): Promise<string> => page.evaluate(async ([c, t]) =>
    new TextDecoder().decode((await window.tabvisor!.handleOf("filer")!.agentExec(c, { timeoutMs: t })).stdout).replace(/\n$/, ""),
    [cmd, timeoutMs] as const);

  const ready = (name: string, timeout = 60_000) => page.waitForFunction(
    (n) => window.tabvisor?.readyOf(n) && window.tabvisor.stateOf(n) === "running", name, { timeout, polling: 100 });

  /** Bytes made in the page (random), and their sha256 as the page computes it. */
  async function pageBytes(size: number): Promise<{ bytes: JSHandle<Uint8Array>; sha: string }> {
    const bytes = await page.evaluateHandle((n) => {
      const b = new Uint8Array(n);
      for (let i = 0; i < n; i += 65536) crypto.getRandomValues(b.subarray(i, Math.min(n, i + 65536)));
      return b;
    }, size);
    const sha = await page.evaluate(async (b) => {
      const d = new Uint8Array(await crypto.subtle.digest("SHA-256", b as Uint8Array<ArrayBuffer>));
      return Array.from(d, (x) => x.toString(16).padStart(2, "0")).join("");
    }, bytes);
    return { bytes, sha };
  }

  /** Drops a file on the VM's console (or its tab), as dragging it from the desktop would. */
  const dropOnConsole = (vm: string, name: string, bytes: JSHandle<Uint8Array>, on: "console" | "tab" = "console") =>
    dropFile(page, `[data-testid="${on}"][data-vm="${vm}"]`, name, bytes);

  /** Longest gap between animation frames while `work` runs: the page must not freeze. */
  async function longestFrameGap<T>(work: () => Promise<T>): Promise<{ result: T; gapMs: number }> {
    await page.evaluate(() => {
      const w = window as unknown as { gapWatch: { last: number; max: number; on: boolean } };
      w.gapWatch = { last: performance.now(), max: 0, on: true };
      const tick = (t: number) => {
        if (!w.gapWatch.on) return;
        w.gapWatch.max = Math.max(w.gapWatch.max, t - w.gapWatch.last);
        w.gapWatch.last = t;
        requestAnimationFrame(tick);
      };
      requestAnimationFrame(tick);
    });
    const result = await work();
    const gapMs = await page.evaluate(() => {
      const w = window as unknown as { gapWatch: { max: number; on: boolean } };
      w.gapWatch.on = false;
      return w.gapWatch.max;
    });
    return { result, gapMs };
  }

  async function download(vm: string, path: string): Promise<Buffer> {
    await page.locator(`[data-testid="tab"][data-vm="${vm}"]`).click();
    await page.getByTestId("files").click();
    await page.getByTestId("download-path").fill(path);
    const [dl] = await Promise.all([page.waitForEvent("download", { timeout: 120_000 }), page.getByTestId("download").click()]);
    return readFileSync((await dl.path())!);
  }

  beforeAll(async () => {
    lab = await openEmptyLab();
    page = lab.page;
    // room for 50 MB in the guest's RAM-backed /root, twice over
    expect(await page.evaluate(() => window.tabvisor!.create({ name: "filer", ramMiB: 256 }))).toBeUndefined();
    await ready("filer");
  }, 120_000);
  afterAll(async () => { await lab?.close(); });

  it("a file dropped on the console lands in /root/uploads; a guest file downloads with the same sha256", async () => {
    const { bytes, sha } = await pageBytes(300_000);
    await dropOnConsole("filer", "hello world.bin", bytes);
    await page.getByTestId("notice").filter({ hasText: "/root/uploads/hello world.bin" }).waitFor({ timeout: 60_000 });
    expect(await guest("sha256sum '/root/uploads/hello world.bin' | cut -d' ' -f1")).toBe(sha);
    // the VM's tab takes files too
    const second = await pageBytes(1000);
    await dropOnConsole("filer", "from-tab.txt", second.bytes, "tab");
    await page.getByTestId("notice").filter({ hasText: "/root/uploads/from-tab.txt" }).waitFor({ timeout: 60_000 });
    expect(await guest("sha256sum /root/uploads/from-tab.txt | cut -d' ' -f1")).toBe(second.sha);
    // the drops went to the VM, not to the page's snapshot opener
    expect(await page.evaluate(() => window.tabvisor!.vms())).toEqual(["filer"]);

    await guest("head -c 123457 /dev/urandom > /root/out.bin");
    const guestSha = await guest("sha256sum /root/out.bin | cut -d' ' -f1");
    const got = await download("filer", "/root/out.bin");
    expect(got.length).toBe(123457);
    expect(createHash("sha256").update(got).digest("hex")).toBe(guestSha);
    expect(lab.errors).toEqual([]);
  }, 180_000);

  it("50 MB go in and come out while the page keeps drawing", async () => {
    const { bytes, sha } = await pageBytes(50 << 20);
    const up = await longestFrameGap(async () => {
      await dropOnConsole("filer", "big.bin", bytes);
      await page.getByTestId("transfer").first().waitFor({ timeout: 20_000 }); // progress is shown
      await page.getByTestId("notice").filter({ hasText: "/root/uploads/big.bin" }).waitFor({ timeout: 240_000 });
    });
    expect(await guest("wc -c < /root/uploads/big.bin", 60_000)).toBe(String(50 << 20));
    // what comes back is read from the guest's file: the same sha256 shows the upload arrived whole (a sha256sum of
    // 50 MB inside the guest would take a minute of emulated work on a loaded machine)
    const down = await longestFrameGap(() => download("filer", "/root/uploads/big.bin"));
    expect(createHash("sha256").update(down.result).digest("hex")).toBe(sha);
    // Frames keep coming while the bytes move (one long task of the page would show here). The limit leaves room
    // for a loaded machine: a freeze for the length of the transfer would be seconds.
    expect(up.gapMs).toBeLessThan(1000);
    expect(down.gapMs).toBeLessThan(1000);
    console.log(`50 MB: longest frame gap up ${up.gapMs.toFixed(0)} ms, down ${down.gapMs.toFixed(0)} ms`);
  }, 480_000);

  it("a path that is not there gives a message, not a download", async () => {
    let downloads = 0;
    page.on("download", () => downloads++);
    await page.getByTestId("files").click();
    await page.getByTestId("download-path").fill("/root/no-such-file");
    await page.getByTestId("download").click();
    await page.getByTestId("notice").filter({ hasText: "No such file or directory" }).waitFor({ timeout: 30_000 });
    expect(downloads).toBe(0);
  }, 60_000);
});
