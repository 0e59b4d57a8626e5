// Disk write throughput in the page, a disk in memory (a lab in the address) against a persistent one (the saved
// lab: OPFS): the guest writes 16 MiB of random data from tmpfs to /dev/vda with dd conv=fsync (so the last FLUSH
// waits for the data to be durable), three times each, timed by the guest's clock.
//   node --import tsx web/tests/measure-disk.ts

import { startDevServer, launchBrowser, consoleCommand } from "./harness.ts";

const VM = "bench";
const server = await startDevServer();
const results: Record<string, string[]> = {};
try {
  for (const mode of ["memory", "persistent"] as const) {
    const browser = await launchBrowser();
    const page = browser.page;
    try {
      await page.goto(server.url + "?lab=");
      if (mode === "memory") {
        await page.waitForFunction(() => window.tabvisor?.hv !== undefined);
        await page.evaluate((n) => window.tabvisor!.create({ name: n, ramMiB: 128, diskMiB: 64 }), VM);
      } else {
        await page.evaluate((name) => new Promise<void>((resolve, reject) => {
          const req = indexedDB.open("keyval-store");
          req.onupgradeneeded = () => req.result.createObjectStore("keyval");
          req.onerror = () => reject(req.error);
          req.onsuccess = () => {
            const tx = req.result.transaction("keyval", "readwrite");
            tx.objectStore("keyval").put([{ name, ramMiB: 128, diskMiB: 64 }], "tabvisor.lab.v1");
            tx.oncomplete = () => { req.result.close(); resolve(); };
            tx.onerror = () => reject(tx.error);
          };
        }), VM);
        await page.goto(server.url);
      }
      await page.waitForFunction((n) => window.tabvisor?.readyOf(n), VM, { timeout: 60_000 });
      await consoleCommand(page, VM, "dmesg -n 1; dd if=/dev/urandom of=/tmp/r bs=64k count=256 2>/dev/null", 60_000);
      results[mode] = [];
      for (let i = 0; i < 3; i++) {
        // the guest's own clock (/proc/uptime, 10 ms steps) around the copy
        const out = await consoleCommand(page, VM,
          "s=$(cut -d' ' -f1 /proc/uptime); dd if=/tmp/r of=/dev/vda bs=64k conv=fsync 2>/dev/null; e=$(cut -d' ' -f1 /proc/uptime); " +
          "echo $s $e | awk '{printf \"%.2f s, %.1f MB/s\\n\", $2-$1, 16.777216/($2-$1)}'", 120_000);
        results[mode].push(`16 MiB with conv=fsync: ${out.trim()}`);
      }
      const stats = await page.evaluate(() => window.tabvisor!.stats());
      console.log(`${mode}: disk stored ${stats?.disk?.storedBytes ?? 0} bytes`);
    } finally {
      await browser.close();
    }
  }
} finally {
  await server.close();
}
for (const [mode, lines] of Object.entries(results)) console.log(`${mode}:\n  ${lines.join("\n  ")}`);
