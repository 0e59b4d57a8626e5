// `npm run bench:net`: network figures between two VMs on one virtual switch (in one Node process):
// TCP throughput (busybox nc piping a few MB from one VM to the other, timed on the host) and ping round trip.

import { NodeVm } from "../emulator-core/src/node/vm.ts";
import { VirtualSwitch, Gateway, attachNic } from "../emulator-core/src/net/index.ts";

const MB = 8;

function vm(hostname: string, macLast: number): NodeVm {
  return new NodeVm({
    ramMiB: 128, nics: 1, hostname, keepOutput: true, macs: [[0x52, 0x54, 0x00, 0x12, 0x34, macLast]],
    append: `console=ttyS0 hostname=${hostname} tabvisor.dhcp=wait`,
  });
}

async function main(): Promise<void> {
  const sw = new VirtualSwitch({ name: "bench", capture: false });
  new Gateway(sw, { ip: "10.0.9.1", prefix: 24, domain: "lab" });
  const server = vm("server", 0x21);
  const client = vm("client", 0x22);
  attachNic(sw, server.nics[0], { name: "server", wake: () => server.wake() });
  attachNic(sw, client.nics[0], { name: "client", wake: () => client.wake() });
  server.start();
  client.start();
  await Promise.all([server.waitFor("@@GUEST_READY@@", 60_000, 0), client.waitFor("@@GUEST_READY@@", 60_000, 0)]);
  await server.command("true");
  await client.command("true");

  // ping round trip, as the guest measures it
  const ping = await client.command("ping -c 20 -i 0.2 server", 60_000);
  const rtt = /min\/avg\/max = ([\d.]+)\/([\d.]+)\/([\d.]+)/.exec(ping);
  if (!rtt) throw new Error(`ping gave no summary:\n${ping}`);

  // TCP: the server counts what it receives; the client sends MB megabytes of zeros
  server.send("nc -l -p 5000 | wc -c\n");
  await new Promise((r) => setTimeout(r, 300));
  const from = server.output.length;
  const t0 = performance.now();
  const sent = client.command(`dd if=/dev/zero bs=65536 count=${MB * 16} 2>/dev/null | nc server 5000`, 120_000);
  const got = await server.waitFor(new RegExp(`\\b${MB * 1024 * 1024}\\b`), 120_000, from);
  const seconds = (performance.now() - t0) / 1000;
  await sent;
  if (!got) throw new Error("no byte count from the server");

  console.log("Network benchmark: two VMs (128 MiB) on one virtual switch, Node, one process");
  console.log(`ping server (20 x, guest-measured)   min/avg/max ${rtt[1]}/${rtt[2]}/${rtt[3]} ms`);
  console.log(`TCP ${MB} MiB client -> server (nc)     ${seconds.toFixed(2)} s   ${(MB * 8 / seconds).toFixed(1)} Mbit/s`);
  server.stop();
  client.stop();
  process.exit(0);
}

main().catch((e) => { console.error(`bench-net: ${e instanceof Error ? e.message : e}`); process.exit(1); });
