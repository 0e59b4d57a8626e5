// Machine state in the page (Chromium): a snapshot taken and restored from the dashboard, a fork, snapshot files
// (corrupt ones refused with a message, one made in Node opened in the page and one made in the page restored in
// Node), and resuming the lab after a reload. One page for the whole file: alpha (64 MiB and a 16 MiB disk, so it
// boots) and what the tests make of it; the last test loads the saved lab instead.

import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { JSHandle, Page } from "playwright-core";
import { openEmptyLab, consoleCommand, dropFile as dropOn } from "./harness.ts";
import { NodeVm } from "../../emulator-core/src/node/vm.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("snapshots, forks and resume (vite dev server, Chromium)", () => {
  let lab: Awaited<ReturnType<typeof openEmptyLab>>;
  let page: Page;
  let dir: string;

  const textOf = (name: string) => page.evaluate((n) => window.tabvisor!.textOf(n), name);
  const vms = () => page.evaluate(() => window.tabvisor!.vms());
  const ready = (names: string[], timeout = 60_000) => page.waitForFunction(
    (ns) => ns.every((n) => window.tabvisor?.readyOf(n) && window.tabvisor.stateOf(n) === "running"), names, { timeout, polling: 100 });
  const notice = () => page.getByTestId("notice");

  /** Types a command into the VM's console and resolves with its output. */
  const run = (name: string, cmd: string, timeout?: number) => consoleCommand(page, name, cmd, timeout);

  async function showVm(name: string): Promise<void> {
    if (await page.getByTestId("show-snapshots").innerText() === "Consoles") await page.getByTestId("show-snapshots").click();
    await page.locator(`[data-testid="tab"][data-vm="${name}"]`).click();
  }

  /** Drops a file onto the dashboard, as dragging it from the desktop would; `bytes` are made in the page. */
  const dropFile = (name: string, bytes: JSHandle<Uint8Array>) => dropOn(page, '[data-testid="dashboard"]', name, bytes);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "tabvisor-snap-"));
    lab = await openEmptyLab();
    page = lab.page;
    expect(await page.evaluate(() => window.tabvisor!.create({ name: "alpha", diskMiB: 16 }))).toBeUndefined();
    await ready(["alpha"]);
  });
  afterAll(async () => {
    await lab?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("takes a snapshot from the toolbar and restores it from the Snapshots view: what was written after it is gone", async () => {
    await run("alpha", "echo kept > /root/before; printf disk-before | dd of=/dev/vda bs=512 seek=1 conv=sync 2>/dev/null; sync");
    await showVm("alpha");
    await page.getByTestId("snapshot").click();
    await expect.poll(() => notice().innerText(), { timeout: 20_000 }).toMatch(/Snapshot of alpha saved \(\d+\.\d MB, taken in/);
    const timing = await page.evaluate(() => window.tabvisor!.snapshots!.lastTiming);
    console.log(`snapshot of alpha (64 MiB, 16 MiB disk) in the page: ${(timing!.bytes! / 1048576).toFixed(1)} MB in ${timing!.ms.toFixed(0)} ms`);

    await run("alpha", "echo lost > /root/after; printf disk-after | dd of=/dev/vda bs=512 seek=2 conv=sync 2>/dev/null; sync; ls /root");
    await page.getByTestId("show-snapshots").click();
    const row = page.locator('[data-testid="snapshot-row"][data-vm="alpha"]');
    await expect.poll(() => row.count()).toBe(1);
    expect(await row.innerText()).toMatch(/alpha[\s\S]*MB/);
    await row.getByTestId("snapshot-restore").click();
    await expect.poll(() => notice().innerText(), { timeout: 20_000 }).toMatch(/alpha restored from snapshot .* in \d+/);
    const restoreMs = (await page.evaluate(() => window.tabvisor!.snapshots!.lastTiming))!.ms;
    console.log(`restore of alpha into its VM: ${restoreMs.toFixed(0)} ms`);
    // the view goes back to the restored VM's console, which shows its last lines again
    await page.locator('[data-testid="console"][data-vm="alpha"]').waitFor();
    expect(await textOf("alpha")).toMatch(/\[restored "alpha .*" of alpha, taken /);

    expect(await run("alpha", "ls -1 /root")).toBe("before");
    expect(await run("alpha", "cat /root/before")).toBe("kept");
    // the disk is the snapshot's too (read past the guest's page cache; the kernel's notice of it kept off the console)
    await run("alpha", "dmesg -n 1; echo 3 > /proc/sys/vm/drop_caches");
    expect(await run("alpha", "dd if=/dev/vda bs=512 skip=1 count=2 2>/dev/null | tr -d '\\0'; echo")).toBe("disk-before");
  });

  it("forks a running VM: the copy has its own name, MAC and lease and a copy-on-write disk; both run on", async () => {
    await showVm("alpha");
    const t0 = Date.now();
    await page.getByTestId("fork").click();
    await page.locator('[data-testid="vm-card"][data-vm="alpha-2"]').waitFor();
    await ready(["alpha-2"], 20_000);
    const forkMs = Date.now() - t0;
    const took = (await page.evaluate(() => window.tabvisor!.snapshots!.lastTiming))!;
    console.log(`fork of alpha (64 MiB, 16 MiB disk): copy created in ${took.ms.toFixed(0)} ms, running with its own identity after ${forkMs} ms (click to ready)`);
    expect(forkMs).toBeLessThan(5000);

    const idOf = async (vm: string) => (await run(vm, "echo $(hostname) $(cat /sys/class/net/eth0/address)")).split(" ");
    const [nameA, macA] = await idOf("alpha");
    const [nameB, macB] = await idOf("alpha-2");
    expect(nameA).toBe("alpha");
    expect(nameB).toBe("alpha-2");
    expect(macB).not.toBe(macA);
    expect(await run("alpha-2", "cat /root/before; dd if=/dev/vda bs=512 skip=1 count=1 2>/dev/null | tr -d '\\0'; echo")).toBe("kept\ndisk-before");
    // each has its own DHCP lease (the copy asked for one with its new MAC)
    const addr = (vm: string) => run(vm, "ip -4 -o addr show eth0 | awk '{print $4}'");
    let a = "", b = "";
    for (let i = 0; i < 40 && !(a && b); i++) {
      [a, b] = await Promise.all([addr("alpha"), addr("alpha-2")]);
      if (!(a && b)) await sleep(250);
    }
    expect(a).toMatch(/^10\.0\.1\.\d+\/24$/);
    expect(b).toMatch(/^10\.0\.1\.\d+\/24$/);
    expect(b).not.toBe(a);
    // both run on, separately
    await run("alpha-2", "echo copy > /root/mine");
    expect(await run("alpha", "ls -1 /root")).toBe("before");
    expect(await run("alpha-2", "ls -1 /root")).toBe("before\nmine");
    // the disk is copy-on-write: what was written before the fork is shared, not copied (neither holds a block of
    // its own yet; the guests do not touch the disk unasked)...
    const disk = (vm: string) => page.evaluate(async (n) => (await window.tabvisor!.handleOf(n)!.stats()).disk!, vm);
    let [dA, dB] = [await disk("alpha"), await disk("alpha-2")];
    expect(dB.sharedBytes).toBeGreaterThan(0);
    expect(dB.sharedBytes).toBe(dA.sharedBytes);
    expect([dA.ownBytes, dB.ownBytes]).toEqual([0, 0]);
    // ...and each writes only its own blocks, which the other does not see
    await run("alpha-2", "printf disk-copied | dd of=/dev/vda bs=512 seek=1 conv=notrunc 2>/dev/null; sync");
    await run("alpha", "printf orig-disk | dd of=/dev/vda bs=512 seek=2 conv=notrunc 2>/dev/null; sync");
    const sector = (vm: string, n: number) => run(vm, `dd if=/dev/vda bs=512 skip=${n} count=1 2>/dev/null | tr -d '\\0'; echo`);
    expect(await sector("alpha-2", 1)).toBe("disk-copied"); // (as long as what it overwrote)
    expect(await sector("alpha", 1)).toBe("disk-before");
    expect(await sector("alpha", 2)).toBe("orig-disk");
    expect(await sector("alpha-2", 2)).toBe("");
    [dA, dB] = [await disk("alpha"), await disk("alpha-2")];
    expect([dA.ownBytes, dB.ownBytes]).toEqual([4096, 4096]); // one block each (sectors 1 and 2 are in block 0)
    expect(dB.sharedBytes).toBe(dA.sharedBytes);
  });

  it("refuses a corrupt, truncated or newer snapshot file with a message, and changes nothing", async () => {
    // alpha's snapshot, spoilt three ways in the page
    const good = await page.evaluateHandle(async () => {
      const s = window.tabvisor!.snapshots!;
      return (await s.store.load(s.records.find((r) => r.vmName === "alpha")!.id))!;
    });
    const spoilt = (how: "flip" | "cut" | "version") => page.evaluateHandle(([g, h]) => {
      const b = h === "cut" ? g.slice(0, g.length - 1000) : g.slice();
      if (h === "flip") b[b.length >> 1] ^= 0xff;
      if (h === "version") new DataView(b.buffer).setUint32(8, 99, true);
      return b;
    }, [good, how] as const);
    const before = await vms();
    await dropFile("corrupt.tvsnap", await spoilt("flip"));
    await expect.poll(() => notice().innerText()).toMatch(/corrupt\.tvsnap cannot be opened: the snapshot is corrupt: its checksum does not match\. Nothing was changed/);
    expect(await notice().getAttribute("data-kind")).toBe("error");
    await dropFile("short.tvsnap", await spoilt("cut"));
    await expect.poll(() => notice().innerText()).toMatch(/short\.tvsnap cannot be opened: the snapshot is truncated/);
    await dropFile("newer.tvsnap", await spoilt("version"));
    await expect.poll(() => notice().innerText()).toMatch(/newer\.tvsnap cannot be opened: the snapshot has format version 99; this Tabvisor reads version 1/);
    await page.getByTestId("show-snapshots").click();
    await page.getByTestId("snapshot-file").setInputFiles({ name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("hello") });
    await expect.poll(() => notice().innerText()).toMatch(/notes\.txt cannot be opened: this is not a Tabvisor snapshot/);
    expect(await vms()).toEqual(before);
    await page.getByTestId("notice-dismiss").click();
  });

  it("opens a snapshot made in Node, and a snapshot downloaded from the page restores in Node", async () => {
    const nodeVm = new NodeVm({ ramMiB: 64, hostname: "nodevm" });
    nodeVm.start();
    try {
      await nodeVm.waitFor("@@GUEST_READY@@", 60_000, 0);
      await nodeVm.command("echo made-in-node > /root/origin");
      writeFileSync(join(dir, "node.tvsnap"), await nodeVm.snapshot({ name: "from node" }));
    } finally {
      nodeVm.stop();
    }
    await page.getByTestId("snapshot-file").setInputFiles(join(dir, "node.tvsnap"));
    await expect.poll(() => notice().innerText(), { timeout: 20_000 }).toMatch(/nodevm created from The file node\.tvsnap/);
    await ready(["nodevm"], 20_000);
    expect(await run("nodevm", "cat /root/origin; hostname")).toBe("made-in-node\nnodevm");

    // the other way: the page's snapshot of alpha (with its disk) as a file, restored by NodeVm
    await page.getByTestId("show-snapshots").click();
    const row = page.locator('[data-testid="snapshot-row"][data-vm="alpha"]').first();
    const [download] = await Promise.all([page.waitForEvent("download"), row.getByTestId("snapshot-download").click()]);
    expect(download.suggestedFilename()).toMatch(/^alpha-[\d-]+\.tvsnap$/);
    const file = join(dir, "page.tvsnap");
    await download.saveAs(file);
    writeFileSync(join(dir, "disk.img"), Buffer.alloc(16 << 20));
    const restored = await NodeVm.restore(readFileSync(file), { disk: join(dir, "disk.img") });
    restored.start();
    try {
      expect(await restored.command("hostname; cat /root/before")).toBe("alpha\r\nkept");
    } finally {
      restored.stop();
    }
    expect(readFileSync(join(dir, "disk.img")).subarray(512, 523).toString()).toBe("disk-before");
  });

  it("brings the lab back after a reload: a counting loop goes on from where it was", async () => {
    // the saved lab (not one in the address, which is not saved): the sample lab on this profile's first visit,
    // trimmed to web2 (64 MiB, no disk: it starts from the template)
    await page.goto(lab.server.url);
    await page.waitForFunction(() => window.tabvisor?.vms().length === 3);
    await page.evaluate(() => { const hv = window.tabvisor!.hv!; for (const n of ["web1", "db1"]) hv.remove(hv.byName(n)!.id); });
    await ready(["web2"]);
    await page.evaluate(() => window.tabvisor!.handleOf("web2")!.sendInput("i=0; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.1; done &\n"));
    await expect.poll(async () => Number(await run("web2", "cat /tmp/n")), { timeout: 10_000 }).toBeGreaterThan(20);
    // the tab is hidden (headless Chromium never hides a page: the event is what the page listens to)
    await page.evaluate(() => {
      Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "hidden" });
      document.dispatchEvent(new Event("visibilitychange"));
    });
    await page.waitForFunction(() => window.tabvisor!.autosave!.lastSavedAt !== undefined, undefined, { timeout: 20_000 });
    // (a hidden page draws no console: ask the guest's agent)
    const atSave = Number(await page.evaluate(async () =>
      new TextDecoder().decode((await window.tabvisor!.handleOf("web2")!.agentExec("cat /tmp/n")).stdout)));
    await page.evaluate(() => {
      delete (document as unknown as { visibilityState?: string }).visibilityState;
      document.dispatchEvent(new Event("visibilitychange"));
    });

    await page.reload();
    const banner = page.getByTestId("resume-banner");
    await banner.waitFor({ timeout: 30_000 });
    expect(await banner.innerText()).toMatch(/web2/);
    await ready(["web2"]); // meanwhile it started fresh
    await page.getByTestId("resume-restore").click();
    await expect.poll(() => notice().innerText(), { timeout: 20_000 }).toMatch(/Restored web2 where they were/);
    await expect.poll(() => banner.count()).toBe(0);
    const after = Number(await run("web2", "cat /tmp/n"));
    // the loop was saved a little after `atSave` was read; it counts on from there, not from 0
    expect(after).toBeGreaterThan(atSave - 15);
    await expect.poll(async () => Number(await run("web2", "cat /tmp/n")), { timeout: 10_000 }).toBeGreaterThan(after + 5);

    // storage full while autosaving: a clear message, and the autosave from before is kept
    const kept = await page.evaluate(() => window.tabvisor!.snapshots!.records.filter((r) => r.kind === "autosave").map((r) => r.id));
    expect(kept.length).toBe(1);
    await page.evaluate(() => {
      IDBObjectStore.prototype.put = function () { throw new DOMException("quota exceeded (test)", "QuotaExceededError"); };
    });
    await page.evaluate(() => window.tabvisor!.autosave!.saveAll());
    await expect.poll(() => notice().innerText()).toMatch(/Autosave: the browser's storage is full: the snapshot of web2 \(\d+\.\d MB\) was not saved, the previous one is kept/);
    expect(await page.evaluate(() => window.tabvisor!.snapshots!.records.filter((r) => r.kind === "autosave").map((r) => r.id))).toEqual(kept);
    expect(lab.errors).toEqual([]);
  });
});
