// Network figures between two VMs in the browser (not a test): the network lab page in Debian's Chromium, two VMs
// on one network (each in its worker, the switch in its own), ping round trip as the guest measures it, and TCP
// throughput with busybox nc (8 MiB of zeros, timed on the host from sending to the server's byte count).
//
//     node --import tsx web/tests/network-measure.ts

import { startDevServer, launchBrowser } from "./harness.ts";

const COUNT = 128; // × 64 KiB = 8 MiB

async function main(): Promise<void> {
  const server = await startDevServer();
  const browser = await launchBrowser();
  const { page } = browser;
  try {
    await page.goto(`${server.url}web/network-lab.html`);
    await page.waitForFunction(() => !!window.tabvisorNet);
    await page.evaluate(async () => {
      const lab = window.tabvisorNet!;
      await lab.loaded();
      lab.createNetwork({ name: "bench", gateway: "10.0.9.1/24", shared: false });
      await Promise.all([
        lab.startVm("server", [{ network: "bench" }], "tabvisor.dhcp=wait"),
        lab.startVm("client", [{ network: "bench" }], "tabvisor.dhcp=wait"),
      ]);
      await Promise.all([lab.waitReady("server"), lab.waitReady("client")]);
    });
    const cmd = (vm: string, c: string, t = 120_000) => page.evaluate(([vm, c, t]) => window.tabvisorNet!.command(vm, c, t), [vm, c, t] as const);

    const ping = (await cmd("client", "ping -c 20 -i 0.2 server")).output;
    const rtt = /min\/avg\/max = ([\d.]+)\/([\d.]+)\/([\d.]+)/.exec(ping);
    if (!rtt) throw new Error(`ping gave no summary:\n${ping}`);
    const flood = (await cmd("client", "ping -c 1000 -A -q server")).output;
    const rttA = /min\/avg\/max = ([\d.]+)\/([\d.]+)\/([\d.]+)/.exec(flood);

    const bytes = COUNT * 65536;
    const from = await page.evaluate(() => window.tabvisorNet!.mark("server"));
    await page.evaluate(() => window.tabvisorNet!.send("server", "nc -l -p 5000 | wc -c\n"));
    await new Promise((r) => setTimeout(r, 500));
    const t0 = performance.now();
    const sent = cmd("client", `dd if=/dev/zero bs=65536 count=${COUNT} 2>/dev/null | nc server 5000`);
    await page.evaluate(([f, re]) => window.tabvisorNet!.waitFor("server", re, 120_000, f), [from, `^\\s*${bytes}\\s*$`] as const);
    const seconds = (performance.now() - t0) / 1000;
    await sent;

    console.log("Network figures: two VMs (128 MiB) on one virtual network in Chromium (VM workers + a switch worker)");
    console.log(`ping server (20 x, 0.2 s apart, guest-measured)   min/avg/max ${rtt[1]}/${rtt[2]}/${rtt[3]} ms`);
    if (rttA) console.log(`ping -A (1000 back to back)                       min/avg/max ${rttA[1]}/${rttA[2]}/${rttA[3]} ms`);
    console.log(`TCP ${bytes / 1048576} MiB client -> server (nc)               ${seconds.toFixed(2)} s   ${(bytes * 8 / 1e6 / seconds).toFixed(1)} Mbit/s`);
  } finally {
    await browser.close();
    await server.close();
  }
}

main().then(() => process.exit(0), (e) => { console.error(`network-measure: ${e instanceof Error ? e.message : e}`); process.exit(1); });
