// Persistent disks in the page (Chromium, OPFS): a file written on a VM's disk is there after a reload; Export disk
// then Import disk gives the same image back (and a wrong image is refused, losing nothing); Reset disk empties it;
// a small forced quota (?diskQuotaMiB=N) gives the guest I/O errors, the page says why and earlier files survive;
// a tab killed during heavy writes to an ext4 file system reopens with the file system replaying its journal and
// checking clean with the host's e2fsck -fn. One VM, "keeper" (64 MiB, a 16 MiB disk), in the saved lab (a lab in
// the address is not kept, nor are its disks).

import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { execFileSync, spawnSync } from "node:child_process";
import type { Page } from "playwright-core";
import { startDevServer, launchBrowser, consoleCommand, setSavedLab, type Served, type Browser } from "./harness.ts";

const VM = "keeper";
const DISK = 16 * 1024 * 1024;
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

describe("persistent disks (vite dev server, Chromium, OPFS)", () => {
  let server: Served;
  let browser: Browser;
  let page: Page;
  let dir: string;
  const errors: string[] = [];

  const run = (cmd: string, timeout?: number) => consoleCommand(page, VM, cmd, timeout);
  const ready = (timeout = 60_000) => page.waitForFunction(
    (n) => window.tabvisor?.readyOf(n) && window.tabvisor.stateOf(n) === "running", VM, { timeout, polling: 100 });
  const stateOf = () => page.evaluate((n) => window.tabvisor?.stateOf(n), VM);

  /** Keeps kernel messages off the console the commands are read from. Tried again when its answer is lost: a
   *  guest that booted (rather than starting from the template) may have the terminal answer a query of its
   *  (a cursor position report) typed into the line. */
  async function quietKernel(): Promise<void> {
    for (let i = 0; ; i++) {
      try {
        await run("dmesg -n 1", 5000);
        return;
      } catch (e) {
        if (i >= 3) throw e;
      }
    }
  }

  const watched = new WeakSet<Page>();
  async function open(query = ""): Promise<void> {
    if (!watched.has(page)) {
      watched.add(page);
      page.on("pageerror", (e) => errors.push(e.message));
      page.on("console", (m) => { if (process.env.DEBUG_DISK) console.log("page:", m.text()); });
    }
    await page.goto(server.url + query);
    await page.waitForFunction((n) => window.tabvisor?.vms().includes(n), VM, { timeout: 60_000 });
    await ready();
    await quietKernel();
  }

  /** Exports the disk through the toolbar's Disk… menu; resolves with the image's bytes. */
  async function exportDisk(name: string): Promise<Uint8Array> {
    await page.getByTestId("disk-menu").click();
    const [download] = await Promise.all([page.waitForEvent("download", { timeout: 60_000 }), page.getByTestId("disk-export").click()]);
    expect(download.suggestedFilename()).toBe(`${VM}-disk.img`);
    const file = join(dir, name);
    await download.saveAs(file);
    return readFileSync(file);
  }

  /** Imports a file through Disk… > Import disk… and confirms (the VM is powered off by it). */
  async function importDisk(file: string): Promise<void> {
    await page.getByTestId("disk-import-input").setInputFiles(file);
    await page.getByTestId("disk-confirm").click();
  }

  async function powerOn(): Promise<void> {
    await page.getByTestId("power-on").click();
    await ready();
    await quietKernel();
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "tabvisor-disk-"));
    server = await startDevServer();
    browser = await launchBrowser();
    page = browser.page;
    // the saved lab: one VM with a disk (written the way the page keeps it, idb-keyval's default store)
    await page.goto(server.url + "?lab=");
    await setSavedLab(page, [{ name: VM, ramMiB: 64, diskMiB: 16 }]);
    await open();
    // kernel messages stay off the console the commands are read from
    await quietKernel();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  let fileSha = "";

  it("a file written on the disk is there after a reload, with the same sha256", async () => {
    expect(await run("mke2fs /dev/vda >/dev/null 2>&1; mkdir -p /mnt; mount /dev/vda /mnt && echo mounted")).toBe("mounted");
    fileSha = await run("dd if=/dev/urandom of=/mnt/data bs=1k count=300 2>/dev/null; sync; sha256sum /mnt/data | cut -d' ' -f1");
    expect(fileSha).toMatch(/^[0-9a-f]{64}$/);
    // the card shows what the disk keeps in the browser's storage, the host panel the total
    await expect.poll(() => page.getByTestId("card-disk-stored").getAttribute("data-value"), { timeout: 10_000 })
      .toSatisfy((v) => Number(v) > 300 * 1024);
    expect(await page.getByTestId("host-storage").innerText()).toMatch(/in VM disks/);

    // the page asks for persistent storage (counted by a wrapper put in before its scripts run)
    await page.addInitScript(() => {
      const w = window as unknown as { persistAsked: number };
      w.persistAsked = 0;
      const persist = navigator.storage.persist.bind(navigator.storage);
      navigator.storage.persist = () => { w.persistAsked++; return persist(); };
    });
    await page.reload();
    await expect.poll(() => page.evaluate(() => (window as unknown as { persistAsked: number }).persistAsked)).toBeGreaterThan(0);
    await expect.poll(() => page.getByTestId("storage-persisted").innerText()).toMatch(/persistent/);
    await page.waitForFunction((n) => window.tabvisor?.vms().includes(n), VM, { timeout: 60_000 });
    await ready();
    await quietKernel();
    expect(await run("mkdir -p /mnt; mount /dev/vda /mnt && sha256sum /mnt/data | cut -d' ' -f1")).toBe(fileSha);
  });

  it("Export disk then Import disk: the same image, the file readable; a wrong image is refused and loses nothing", async () => {
    await run("umount /mnt; sync");
    const exported = await exportDisk("one.img");
    expect(exported.length).toBe(DISK);
    expect(await stateOf()).toBe("running"); // the guest was only held while its disk was read
    const image = sha(exported);
    // the host reads the same file system
    const fsck = spawnSync("e2fsck", ["-fn", join(dir, "one.img")], { encoding: "utf8" });
    expect(fsck.status, fsck.stdout + fsck.stderr).toBe(0);

    // Reset disk: asks first, powers the VM off, and the disk is empty
    await page.getByTestId("disk-menu").click();
    await page.getByTestId("disk-reset").click();
    expect(await page.getByTestId("disk-confirm-box").innerText()).toMatch(/Erase the disk of keeper\? .* keeper is on: it will be powered off first/);
    await page.getByTestId("disk-confirm").click();
    await expect.poll(() => page.getByTestId("notice").innerText(), { timeout: 20_000 }).toMatch(/The disk of keeper was reset/);
    expect(await stateOf()).toBe("stopped");
    await powerOn();
    expect(await run("dd if=/dev/vda bs=1M count=16 2>/dev/null | tr -d '\\0' | wc -c")).toBe("0");

    // the wrong size: refused at once, with the reason; nothing changes
    writeFileSync(join(dir, "short.img"), Buffer.alloc(DISK - 512, 1));
    await page.getByTestId("disk-import-input").setInputFiles(join(dir, "short.img"));
    await expect.poll(() => page.getByTestId("disk-note").innerText()).toMatch(/short\.img could not be imported into keeper: it is 16\.0 MiB \(16776704 bytes\) but the disk is 16 MiB; an image must be exactly the disk's size\. The disk is as it was/);
    expect(await stateOf()).toBe("running");

    await importDisk(join(dir, "one.img"));
    await expect.poll(() => page.getByTestId("notice").innerText(), { timeout: 30_000 }).toMatch(/one\.img is now the disk of keeper/);
    // byte for byte the image (exported again before the guest mounts it: a mount writes to the superblock)
    expect(await stateOf()).toBe("stopped");
    expect(sha(await exportDisk("two.img"))).toBe(image);
    await powerOn();
    expect(await run("mkdir -p /mnt; mount /dev/vda /mnt && sha256sum /mnt/data | cut -d' ' -f1")).toBe(fileSha);
  });

  it("a forced small quota: the guest gets I/O errors, the page says why, files written before survive", async () => {
    const stored = Number(await page.getByTestId("card-disk-stored").getAttribute("data-value"));
    // room for about 1 MiB more than the disk keeps now
    const quotaMiB = Math.ceil(stored / 1048576) + 1;
    await open(`?diskQuotaMiB=${quotaMiB}`);
    expect(await run("mkdir -p /mnt; mount /dev/vda /mnt && sha256sum /mnt/data | cut -d' ' -f1")).toBe(fileSha);
    const out = await run("dd if=/dev/urandom of=/mnt/big bs=64k count=64 2>&1; sync; dmesg | grep -ci 'error' ", 60_000);
    expect(Number(out.split("\n").pop())).toBeGreaterThan(0);
    expect(await run("dmesg | grep -i -m1 'I/O error'")).toMatch(/I\/O error/);
    await expect.poll(() => page.getByTestId("disk-problem").innerText(), { timeout: 10_000 }).toMatch(/Disk: the disk's storage is full \(\d+\.\d MiB of overlay in use\)/);
    expect(await page.evaluate((n) => window.tabvisor!.textOf(n), VM)).toMatch(/\[disk: the disk's storage is full/);
    // what was written before is read back from the disk (not the guest's cache)
    expect(await run("echo 3 > /proc/sys/vm/drop_caches; sha256sum /mnt/data | cut -d' ' -f1")).toBe(fileSha);
    // and is still there after a reload without the quota
    await open();
    expect(await run("mkdir -p /mnt; mount -o ro /dev/vda /mnt && sha256sum /mnt/data | cut -d' ' -f1")).toBe(fileSha);
    await run("umount /mnt");
  });

  it("a tab killed during heavy writes to ext4 reopens with a file system that replays its journal and checks clean", async () => {
    // an ext4 file system with a journal (the guest's busybox makes only ext2): made on the host, imported
    const img = join(dir, "ext4.img");
    execFileSync("mkfs.ext4", ["-q", "-F", "-L", "crashtest", img, "16M"]);
    await importDisk(img);
    await expect.poll(() => page.getByTestId("notice").innerText(), { timeout: 30_000 }).toMatch(/ext4\.img is now the disk of keeper/);
    await powerOn();
    // the guest's clock is the host's (the board has no RTC: the host tells the guest its time). Counting from 1970
    // instead, a file deleted in the guest's first seconds would get a deletion time below the inode count, which
    // e2fsck takes for a link of the orphan list (CI once failed so, on an inode deleted at 00:00:01).
    const clockSkew = async () => Math.abs(Number(await run("date +%s")) - Date.now() / 1000);
    expect(await clockSkew()).toBeLessThan(5);
    expect(await run("mkdir -p /mnt; mount -t ext4 /dev/vda /mnt && echo mounted")).toBe("mounted");
    const before = await run("dd if=/dev/urandom of=/mnt/before bs=1k count=200 2>/dev/null; sync; sha256sum /mnt/before | cut -d' ' -f1");
    // heavy writes: files rewritten, made and removed in a loop, with syncs now and then
    await page.evaluate((n) => window.tabvisor!.handleOf(n)!.sendInput(
      "(i=0; while :; do dd if=/dev/urandom of=/mnt/w$((i%24)) bs=4k count=48 2>/dev/null; mkdir -p /mnt/d$((i%7)); " +
      "echo $i > /mnt/d$((i%7))/n$i; rm -f /mnt/d$(((i+3)%7))/*; [ $((i%5)) = 0 ] && sync; i=$((i+1)); done) &\n"), VM);
    // well under way (the guest's writes reached the disk) before the tab dies
    await expect.poll(() => page.evaluate(() => window.tabvisor!.stats().then((s) => s?.disk?.writeBytes ?? 0)), { timeout: 30_000, interval: 250 })
      .toBeGreaterThan(2 * 1024 * 1024);
    // the renderer goes away at once, its workers with it
    const cdp = await browser.context.newCDPSession(page);
    const crashed = page.waitForEvent("crash", { timeout: 20_000 });
    void cdp.send("Page.crash").catch(() => { /* no answer comes: it dies with the renderer */ });
    await crashed;
    page = await browser.context.newPage();
    await open();
    expect(await clockSkew()).toBeLessThan(5);
    // the journal is replayed by the guest's mount; what was synced before the writes is there
    expect(await run("mkdir -p /mnt; mount -t ext4 /dev/vda /mnt && sha256sum /mnt/before | cut -d' ' -f1", 60_000)).toBe(before);
    await run("umount /mnt; sync");
    await exportDisk("after-crash.img");
    const fsck = spawnSync("e2fsck", ["-fn", join(dir, "after-crash.img")], { encoding: "utf8" });
    console.log(`e2fsck -fn after the crash: ${fsck.stdout.trim().split("\n").pop()}`);
    expect(fsck.status, fsck.stdout + fsck.stderr).toBe(0);
    expect(errors).toEqual([]);
  });

  it("a fork's copy and a restored snapshot each have a whole disk of their own, kept across a reload; deleting a VM deletes its disk", async () => {
    const runOn = (vm: string, cmd: string) => consoleCommand(page, vm, cmd);
    const readyOf = (vm: string) => page.waitForFunction(
      (n) => window.tabvisor?.readyOf(n) && window.tabvisor.stateOf(n) === "running", vm, { timeout: 60_000, polling: 100 });
    const folders = () => page.evaluate(async () => {
      const root = await (await navigator.storage.getDirectory()).getDirectoryHandle("tabvisor-disks");
      const out: string[] = [];
      for await (const k of (root as unknown as { keys(): AsyncIterable<string> }).keys()) out.push(k);
      return out.sort();
    });
    expect(await run("mount -t ext4 /dev/vda /mnt && echo A > /mnt/a && sync && cat /mnt/a")).toBe("A");
    await page.getByTestId("fork").click();
    await readyOf(`${VM}-2`);
    expect(await runOn(`${VM}-2`, "dmesg -n 1; cat /mnt/a; echo B > /mnt/b; sync; ls /mnt | grep -c '^b$'")).toBe("A\n1");
    expect(await run("ls /mnt | grep -c '^b$'")).toBe("0");
    // a snapshot of the original, then a file written after it: restoring brings the disk back to the snapshot
    await page.locator(`[data-testid="tab"][data-vm="${VM}"]`).click();
    await page.getByTestId("snapshot").click();
    await expect.poll(() => page.getByTestId("notice").innerText(), { timeout: 20_000 }).toMatch(/Snapshot of keeper saved/);
    await run("echo C > /mnt/c; sync");
    await page.getByTestId("show-snapshots").click();
    await page.locator(`[data-testid="snapshot-row"][data-vm="${VM}"]`).first().getByTestId("snapshot-restore").click();
    await expect.poll(() => page.getByTestId("notice").innerText(), { timeout: 30_000 }).toMatch(/keeper restored from snapshot/);
    expect(await run("ls /mnt | grep -c '^[abc]$'; cat /mnt/a")).toBe("1\nA");
    await run("umount /mnt");
    await consoleCommand(page, `${VM}-2`, "umount /mnt");

    // after a reload each boots afresh on the disk it had
    await open();
    await readyOf(`${VM}-2`);
    expect(await run("mount -t ext4 /dev/vda /mnt && ls /mnt | grep -c '^[bc]$'; cat /mnt/a")).toBe("0\nA");
    expect(await runOn(`${VM}-2`, "dmesg -n 1; mkdir -p /mnt; mount -t ext4 /dev/vda /mnt && cat /mnt/a /mnt/b")).toBe("A\nB");
    expect(await folders()).toEqual([VM, `${VM}-2`]);

    // Delete (with its confirmation) takes the VM's disk with it
    await page.locator(`[data-testid="tab"][data-vm="${VM}-2"]`).click();
    await page.getByTestId("delete-vm").click();
    await page.getByTestId("delete-confirm").click();
    await expect.poll(folders, { timeout: 20_000 }).toEqual([VM]);
    expect(errors).toEqual([]);
  });
});
