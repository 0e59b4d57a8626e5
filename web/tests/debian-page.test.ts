// The Debian system disk in the page (Chromium): the New VM dialog offers it, a VM on it boots to Debian's root
// prompt (its control channel's agent answering) fetching only the chunks its guest reads (kept in Cache Storage), what the guest writes is there after a
// reload, a snapshot holds the image's name and the VM's own blocks (not the 2 GiB disk), and a fork runs on the
// same image with a copy of those blocks and reaches the original over SSH with the lab's key. Runs when the image is built (npm run images:debian, public/images/debian/);
// skipped otherwise, as the Node tests of the image are (emulator-core/tests/debian-image.test.ts).

import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { startDevServer, launchBrowser, consoleCommand, setSavedLab, ROOT, type Served, type Browser } from "./harness.ts";

const BUILT = existsSync(join(ROOT, "public/images/debian/manifest.json"));
const VM = "deb1";

describe.skipIf(!BUILT)("the Debian image in the page (vite dev server, Chromium)", () => {
  let server: Served;
  let browser: Browser;
  let page: Page;
  const errors: string[] = [];

  const run = (vm: string, cmd: string, timeout = 60_000) => consoleCommand(page, vm, cmd, timeout);
  const ready = (vm: string, timeout = 180_000) => page.waitForFunction(
    (n) => window.tabvisor?.readyOf(n) && window.tabvisor.stateOf(n) === "running", vm, { timeout, polling: 200 });
  /** The chunks in the page's cache: how many, and their bytes. */
  const cached = () => page.evaluate(async () => {
    const c = await caches.open("tabvisor-chunks-v1");
    let bytes = 0;
    const keys = await c.keys();
    for (const k of keys) bytes += (await (await c.match(k))!.arrayBuffer()).byteLength;
    return { chunks: keys.length, bytes };
  });

  beforeAll(async () => {
    server = await startDevServer();
    browser = await launchBrowser();
    page = browser.page;
    page.on("pageerror", (e) => errors.push(e.message));
    // a saved lab with no VMs: the VM made below is kept, with its disk
    await page.goto(server.url + "?lab=");
    await setSavedLab(page, []);
    await page.goto(server.url);
    await page.waitForFunction(() => window.tabvisor?.hv !== undefined, undefined, { timeout: 60_000 });
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it("New VM offers the image; the VM boots to Debian's root prompt fetching only what it reads", async () => {
    await page.getByTestId("new-vm").click();
    const image = page.getByTestId("create-image");
    expect(await image.locator("option[value='debian-13']").innerText()).not.toMatch(/not built/);
    await image.selectOption("debian-13");
    // memory follows the image; the disk is the image's
    expect(await page.getByTestId("create-ram").inputValue()).toBe("512");
    expect(await page.getByTestId("create-disk").innerText()).toMatch(/the image's \(2 GiB\)/);
    expect(await page.getByTestId("create-image-note").innerText()).toMatch(/fetched as the guest reads it/);
    await page.getByTestId("create-name").fill(VM);
    await page.getByTestId("create-submit").click();
    await ready(VM);
    await expect.poll(() => page.evaluate((n) => window.tabvisor!.textOf(n), VM), { timeout: 10_000 }).toMatch(/^root@deb1:~# /m);
    expect(await run(VM, "cat /etc/debian_version")).toMatch(/^13\./);
    expect(await run(VM, "python3 -c 'print(6*7)'")).toBe("42");
    // the control channel's agent answers (what files in and out, Open port's checks and the labs' checks use)
    const viaAgent = await page.evaluate(async (n) => {
      const r = await window.tabvisor!.handleOf(n)!.agentExec("cat /etc/debian_version; id -un", { timeoutMs: 10_000 });
      return { code: r.exitCode, out: new TextDecoder().decode(r.stdout) };
    }, VM);
    expect(viaAgent.code).toBe(0);
    expect(viaAgent.out).toMatch(/^13\.\d+\nroot\n$/);
    // the first boot to a prompt and python3 fetched a small part of the image (the target: under 40 MB)
    const c = await cached();
    console.log(`debian-page: the first boot and python3 fetched ${c.chunks} chunks, ${(c.bytes / 1e6).toFixed(1)} MB`);
    expect(c.chunks).toBeGreaterThan(10);
    expect(c.bytes).toBeLessThan(40e6);
    expect(errors).toEqual([]);
  });

  it("a file the guest writes is there after a reload", async () => {
    const token = `kept-${Date.now()}`;
    expect(await run(VM, `echo ${token} > /root/kept.txt; sync; cat /root/kept.txt`)).toBe(token);
    const before = await cached();
    await page.reload();
    await page.waitForFunction((n) => window.tabvisor?.vms().includes(n), VM, { timeout: 60_000 });
    await ready(VM);
    expect(await run(VM, "cat /root/kept.txt")).toBe(token);
    // the second boot took its chunks from the cache (it may have read a few the first did not)
    const after = await cached();
    expect(after.chunks - before.chunks).toBeLessThan(before.chunks / 4);
  });

  it("a snapshot holds the image's name and the VM's own blocks; a fork runs on the same image", async () => {
    await run(VM, "dd if=/dev/urandom of=/root/blob bs=1M count=3 2>/dev/null; sync");
    const blob = await run(VM, "sha256sum /root/blob | cut -c1-64");
    // (a string: the test's own import() would be rewritten for Node by vitest; the dev server serves the module)
    const disk = await page.evaluate(`(async () => {
      const file = await window.tabvisor.handleOf(${JSON.stringify(VM)}).snapshot({ vmName: ${JSON.stringify(VM)} });
      const { openSnapshot } = await import("/emulator-core/src/snapshot/snapshot.ts");
      const { spec, state } = await openSnapshot(file);
      const d = state.disks[0];
      return { bytes: file.length, base: spec.disks[0].base, stateBase: d.base, image: d.image, own: d.own.data.length, size: d.size };
    })()`) as { bytes: number; base: string; stateBase: string; image: unknown; own: number; size: number };
    console.log(`debian-page: snapshot ${(disk.bytes / 1e6).toFixed(1)} MB, the disk's own blocks ${(disk.own / 1e6).toFixed(1)} MB`);
    expect(disk.size).toBe(2 ** 31);
    expect(disk.base).toMatch(/^chunked-[0-9a-f]{32}$/);
    expect(disk.stateBase).toBe(disk.base);
    expect(disk.image).toBeNull();
    // what the guest wrote (the 3 MiB file, logs, the journal), not the 2 GiB disk
    expect(disk.own).toBeGreaterThan(3 << 20);
    expect(disk.own).toBeLessThan(128 << 20);

    const copy = await page.evaluate(async (n) => {
      const hv = window.tabvisor!.hv!;
      const e = await hv.fork(hv.byName(n)!.id);
      return e.spec.name;
    }, VM);
    expect(copy).toBe("deb1-2");
    await ready(copy, 120_000);
    expect(await run(copy, "hostname")).toBe("deb1-2");
    expect(await run(copy, "sha256sum /root/blob | cut -c1-64")).toBe(blob);
    expect(await run(copy, "cat /root/kept.txt")).toMatch(/^kept-/);
    // every VM of the lab has the lab's SSH key: root on one reaches root on another by name
    expect(await run(VM, "i=0; while [ ! -e /run/tabvisor/services-ready ] && [ $i -lt 170 ]; do sleep 1; i=$((i+1)); done; " +
      "cat /run/tabvisor/services.err 2>/dev/null; ls /run/tabvisor/services-ready", 180_000)).toBe("/run/tabvisor/services-ready");
    expect(await run(copy, "ssh -o BatchMode=yes -o ConnectTimeout=30 deb1 'hostname; cat /root/kept.txt' 2>/dev/null", 90_000)).toMatch(/^deb1\nkept-\d+$/);
    expect(errors).toEqual([]);
  });
});

describe("the Debian image when it is not built (Chromium)", () => {
  let server: Served;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    server = await startDevServer();
    browser = await launchBrowser();
    page = browser.page;
    // as on a machine where npm run images:debian never ran (whether or not this one has it)
    await page.route("**/images/debian/manifest.json", (r) => r.fulfill({ status: 404, body: "not found" }));
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it("New VM says how to build it and creates nothing; a VM on it from the lab says why it cannot start", async () => {
    await page.goto(server.url + "?lab=");
    await page.waitForFunction(() => window.tabvisor?.hv !== undefined, undefined, { timeout: 60_000 });
    await page.getByTestId("new-vm").click();
    const image = page.getByTestId("create-image");
    expect(await image.locator("option[value='debian-13']").innerText()).toMatch(/\(not built\)/);
    await image.selectOption("debian-13");
    expect(await page.getByTestId("create-image-missing").innerText()).toMatch(/The Debian image is not built\. Build it with `npm run images:debian`/);
    await page.getByTestId("create-submit").click();
    expect(await page.getByTestId("create-error").innerText()).toMatch(/npm run images:debian/);
    expect(await page.evaluate(() => window.tabvisor!.vms())).toEqual([]);

    // a VM on the image that the page is given anyway (a saved lab from a machine that had it)
    const state = await page.evaluate(async () => {
      const hv = window.tabvisor!.hv!;
      hv.create({ name: "deb9", ramMiB: 256, image: "debian-13", cpuCap: 100, weight: 100, diskMiB: 2048, balloonMiB: 0, bootArgs: "" });
      for (let i = 0; i < 100 && hv.byName("deb9")!.state !== "crashed"; i++) await new Promise((r) => setTimeout(r, 100));
      const e = hv.byName("deb9")!;
      return { state: e.state, detail: e.detail };
    });
    expect(state.state).toBe("crashed");
    expect(state.detail).toMatch(/The Debian image is not built\. Build it with `npm run images:debian`/);
  });
});
