// Two real Linux guests on one virtual switch with a gateway: DHCP leases, names resolved by the gateway's DNS,
// ping by name, httpd + wget by name, ping of the gateway. The "Virtual networks" issue's acceptance test in Node.

import { describe, it, expect, afterEach } from "vitest";
import { NodeVm } from "../src/node/vm.ts";
import { VirtualSwitch, attachNic } from "../src/net/switch.ts";
import { Gateway } from "../src/net/gateway.ts";
import { summarizeCapture, toPcap } from "../src/net/pcap.ts";

const vms: NodeVm[] = [];
afterEach(() => { for (const vm of vms.splice(0)) vm.stop(); });


/** A VM with one NIC whose MAC ends in `macLast`. */
function makeVm(hostname: string, macLast: number): NodeVm {
  const vm = new NodeVm({
    ramMiB: 128, nics: 1, hostname, macs: [[0x52, 0x54, 0x00, 0x12, 0x34, macLast]],
    append: `console=ttyS0 hostname=${hostname} tabvisor.dhcp=wait`,
  });
  vms.push(vm);
  return vm;
}

describe("VMs on a virtual network", () => {
  it("get addresses by DHCP, resolve each other by name through the gateway, ping, serve HTTP, and feel link conditions", async () => {
    const sw = new VirtualSwitch({ name: "lab", captureCapacity: 5000 });
    const gw = new Gateway(sw, { ip: "10.0.7.1", prefix: 24, domain: "lab" });
    const server = makeVm("server", 0x10);
    const client = makeVm("client", 0x11);
    const ps = attachNic(sw, server.nics[0], { name: "server", wake: () => server.wake() });
    const pc = attachNic(sw, client.nics[0], { name: "client", wake: () => client.wake() });
    server.start();
    client.start();

    const [bootS, bootC] = await Promise.all([server.waitFor("@@GUEST_READY@@", 60_000, 0), client.waitFor("@@GUEST_READY@@", 60_000, 0)]);
    expect(bootS).toMatch(/init: eth0 10\.0\.7\.\d+\/24/);
    expect(bootC).toMatch(/init: eth0 10\.0\.7\.\d+\/24/);
    // the shells are up and answering (a prompt may already have scrolled past, so ask rather than look)
    await Promise.all([server.command("true", 30_000), client.command("true", 30_000)]);

    // the gateway's view: both leases bound with the host names the clients sent
    const leases = gw.leases().filter((l) => l.state === "bound");
    expect(leases.map((l) => l.hostname).sort()).toEqual(["client", "server"]);
    const serverIp = leases.find((l) => l.hostname === "server")!.ip;
    const clientIp = leases.find((l) => l.hostname === "client")!.ip;
    expect(leases.find((l) => l.hostname === "server")!.mac).toBe("52:54:00:12:34:10");
    expect(await server.command("ip -4 -o addr show dev eth0")).toContain(`inet ${serverIp}/24`);
    expect(await client.command("ip -4 -o addr show dev eth0")).toContain(`inet ${clientIp}/24`);
    const resolv = await client.command("cat /etc/resolv.conf");
    expect(resolv).toContain("nameserver 10.0.7.1");
    expect(resolv).toContain("search lab");
    expect(await client.command("ip route")).toContain("default via 10.0.7.1");

    // ping by name (resolved by the gateway's DNS)
    const ping = await client.command("ping -c 3 server", 30_000);
    expect(ping).toContain(`PING server (${serverIp})`);
    expect(ping).toMatch(/3 packets transmitted, 3 (packets )?received/);
    expect(await client.command("ping -c 1 server.lab", 20_000)).toMatch(/1 packets transmitted, 1 (packets )?received/);

    // HTTP by name
    await server.command("mkdir -p /www && echo served-by-$(hostname) > /www/index.html && httpd -h /www && echo started");
    const page = await client.command("wget -q -O - http://server/", 30_000);
    expect(page).toContain("served-by-server");

    // the gateway answers ping; unknown names fail
    expect(await server.command("ping -c 1 10.0.7.1", 20_000)).toMatch(/1 packets transmitted, 1 (packets )?received/);
    expect(await server.command("ping -c 1 gateway", 20_000)).toContain("PING gateway (10.0.7.1)");
    expect(await client.command("ping -c 1 nosuchhost; echo status=$?", 20_000)).toMatch(/status=[1-9]/);

    // link conditions: 25 ms each way on the client's link; then the server's cable unplugged (the guest sees
    // NO-CARRIER) and plugged back in
    pc.setLink({ delayMs: 25 });
    const slow = await client.command("ping -c 1 server", 20_000);
    const rtt = Number(/time=([\d.]+) ms/.exec(slow)?.[1]);
    // 25 ms each way (without the delay a ping takes about a millisecond). The delay is a Node timer, which runs on
    // the event loop's cached clock of whole milliseconds and can fire up to a millisecond early by the guest's
    // clock (host time read afresh): a CI run read 49.786 ms.
    expect(rtt).toBeGreaterThanOrEqual(48);
    pc.setLink({ delayMs: 0 });
    ps.setUp(false);
    expect(await client.command("ping -c 1 -W 1 server; echo status=$?", 20_000)).toMatch(/0 packets received[\s\S]*status=1/);
    expect(await server.command("ip link show eth0")).toContain("NO-CARRIER");
    expect(ps.counters.drops.linkDown).toBeGreaterThan(0);
    ps.setUp(true);
    expect(await client.command("ping -c 1 -W 3 server", 20_000)).toMatch(/1 packets transmitted, 1 (packets )?received/);

    // what the switch saw
    const summaries = sw.capture.frames().map(summarizeCapture);
    const infos = summaries.map((s) => s.info);
    expect(infos.some((i) => /^DHCP DISCOVER .*\(server\)/.test(i))).toBe(true);
    expect(infos.some((i) => i.startsWith(`DHCP ACK ${clientIp}`))).toBe(true);
    expect(infos.some((i) => i === "DNS query A server.lab")).toBe(true);
    expect(infos.some((i) => i === `DNS response A server.lab → ${serverIp}`)).toBe(true);
    expect(infos.some((i) => i.startsWith(`ICMP echo request ${clientIp} → ${serverIp}`))).toBe(true);
    expect(infos.some((i) => i.startsWith(`TCP ${clientIp}:`) && i.includes(`→ ${serverIp}:80 [SYN]`))).toBe(true);
    expect(toPcap(sw.capture.frames()).length).toBeGreaterThan(24);

    // MAC learning: each VM's MAC on its own port
    const table = sw.macTable();
    expect(table).toContainEqual(expect.objectContaining({ mac: "52:54:00:12:34:10", port: ps.id }));
    expect(table).toContainEqual(expect.objectContaining({ mac: "52:54:00:12:34:11", port: pc.id }));
    expect(ps.counters.rxPackets).toBeGreaterThan(0);
    expect(pc.counters.txPackets).toBeGreaterThan(0);
    expect(gw.counters.dnsQueries).toBeGreaterThan(0);
  }, 60_000);
});
