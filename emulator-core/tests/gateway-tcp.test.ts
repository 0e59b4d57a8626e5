// The gateway's own TCP (emulator-core/src/net/tcp.ts): the host side of "Open port". Against a real Linux guest on
// a virtual switch: an HTTP download from busybox httpd whose bytes match the guest's sha256, a stream into the
// guest, and a closed port refused. Without a guest: what the endpoint does with segments that do not belong.

import { describe, it, expect, afterAll } from "vitest";
import { createHash } from "node:crypto";
import { NodeVm } from "../src/node/vm.ts";
import { VirtualSwitch, attachNic } from "../src/net/switch.ts";
import { Gateway } from "../src/net/gateway.ts";
import { TcpEndpoint } from "../src/net/tcp.ts";
import { TCP_ACK, TCP_RST, TCP_SYN, buildTcp, parseTcp, toIp } from "../src/net/packet.ts";
import { pattern } from "./virtio-driver.ts";

const vms: NodeVm[] = [];
afterAll(() => { for (const vm of vms) vm.stop(); });
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** Opens a connection, sends `request`, half-closes, and collects everything until the close. */
function exchange(gw: Gateway, ip: string, port: number, request?: Uint8Array): Promise<{ data: Uint8Array; error?: string }> {
  return new Promise((resolve) => {
    const parts: Uint8Array[] = [];
    const c = gw.connectTcp(ip, port, {
      onOpen: () => { if (request) c.write(request); c.end(); },
      onData: (b) => parts.push(b),
      onClose: (error) => resolve({ data: Buffer.concat(parts), error }),
    });
  });
}

describe("the gateway's TCP to a Linux guest", () => {
  const sw = new VirtualSwitch({ name: "tcp" });
  const gw = new Gateway(sw, { ip: "10.0.9.1", prefix: 24 });
  let vm: NodeVm;
  let ip: string;

  it("downloads a file from the guest's web server, byte for byte", async () => {
    vm = new NodeVm({ ramMiB: 128, nics: 1, hostname: "web", append: "console=ttyS0 hostname=web tabvisor.dhcp=wait" });
    vms.push(vm);
    attachNic(sw, vm.nics[0], { name: "web", wake: () => vm.wake() });
    vm.start();
    await vm.waitFor("@@GUEST_READY@@", 60_000, 0);
    await vm.command("true", 30_000);
    ip = gw.leases().find((l) => l.hostname === "web")!.ip;
    await vm.command("mkdir -p /srv && head -c 3000000 /dev/urandom > /srv/big && echo '<h1>hi</h1>' > /srv/index.html && httpd -h /srv -p 80");
    const want = (await vm.command("sha256sum /srv/big")).split(" ")[0];
    const t0 = performance.now();
    const { data, error } = await exchange(gw, ip, 80, new TextEncoder().encode("GET /big HTTP/1.0\r\nHost: web\r\n\r\n"));
    const ms = performance.now() - t0;
    expect(error).toBeUndefined();
    const text = Buffer.from(data).toString("latin1");
    const head = text.slice(0, text.indexOf("\r\n\r\n"));
    expect(head).toMatch(/^HTTP\/1\.[01] 200 /);
    expect(head).toMatch(/Content-Length: 3000000/i);
    expect(sha(data.subarray(head.length + 4))).toBe(want);
    expect(gw.tcpConnections).toBe(0); // closed both ways and forgotten
    console.log(`3 MB over the gateway's TCP in ${ms.toFixed(0)} ms`);
  }, 120_000);

  it("streams into the guest, and a port nobody listens on is refused", async () => {
    await vm.command("nc -l -p 9000 > /tmp/in 2>/dev/null & sleep 0.3");
    const data = pattern(1_000_000, 5);
    const r = await exchange(gw, ip, 9000, data);
    expect(r.error).toBeUndefined(); // our FIN was acknowledged and the guest closed its side
    expect((await vm.command("wc -c < /tmp/in; sha256sum /tmp/in")).split(/\s+/).slice(0, 2)).toEqual(["1000000", sha(data)]);

    // a reader that falls behind: the window closes at its buffer, the guest waits, and all comes when it reads
    const got: Uint8Array[] = [];
    let closed: string | undefined | null = null;
    const c = gw.connectTcp(ip, 80, {
      onOpen: () => { c.write(new TextEncoder().encode("GET /big HTTP/1.0\r\n\r\n")); c.end(); },
      onData: (b) => got.push(b),
      onClose: (e) => { closed = e; },
    }, { receiveBuffer: 100_000 });
    await new Promise((r) => setTimeout(r, 3000));
    const held = got.reduce((n, b) => n + b.length, 0);
    expect(held).toBeGreaterThan(50_000);
    expect(held).toBeLessThanOrEqual(100_000);
    for (let i = 0; i < 600 && closed === null; i++) {
      c.consumed(got.reduce((n, b) => n + b.length, 0)); // (consumed() frees what was not freed yet, at most)
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(closed).toBeUndefined();
    const all = Buffer.concat(got);
    const body = all.subarray(all.indexOf("\r\n\r\n") + 4);
    expect(sha(body)).toBe((await vm.command("sha256sum /srv/big")).split(" ")[0]);

    const refused = await exchange(gw, ip, 81);
    expect(refused.error).toBe("connection refused");
    expect(() => gw.connectTcp("10.0.10.5", 80, {})).toThrow(/not an address of a VM on this network/);
  }, 60_000);
});

describe("TCP segments that do not belong", () => {
  const us = toIp("10.0.0.1"), peer = toIp("10.0.0.5");

  it("resets a segment for no connection, ignores a reset, and gives up on a peer that never answers", async () => {
    const out: { dst: number; seg: ReturnType<typeof parseTcp> }[] = [];
    const ep = new TcpEndpoint({ ip: us, sendSegment: (dst, s) => out.push({ dst, seg: parseTcp(s) }) });
    ep.input(peer, buildTcp(peer, us, { srcPort: 80, dstPort: 50000, seq: 1000, ack: 77, flags: TCP_ACK, payload: new Uint8Array(10) }));
    expect(out.at(-1)!.seg).toMatchObject({ srcPort: 50000, dstPort: 80, seq: 77, flags: TCP_RST });
    ep.input(peer, buildTcp(peer, us, { srcPort: 80, dstPort: 50000, seq: 5, flags: TCP_SYN }));
    expect(out.at(-1)!.seg).toMatchObject({ ack: 6, flags: TCP_RST | TCP_ACK });
    const n = out.length;
    ep.input(peer, buildTcp(peer, us, { srcPort: 80, dstPort: 50000, seq: 5, flags: TCP_RST }));
    expect(out.length).toBe(n);

    // a SYN answered by a SYN-ACK for another sequence number: reset, still waiting for the real answer
    let closed: string | undefined = "open";
    const c = ep.connect(peer, 80, { onClose: (e) => { closed = e; } });
    const syn = out.at(-1)!.seg!;
    expect(syn.flags).toBe(TCP_SYN);
    expect([...syn.options.subarray(0, 2)]).toEqual([2, 4]); // MSS
    ep.input(peer, buildTcp(peer, us, { srcPort: 80, dstPort: c.localPort, seq: 9, ack: (syn.seq + 99) >>> 0, flags: TCP_SYN | TCP_ACK }));
    expect(out.at(-1)!.seg!.flags).toBe(TCP_RST);
    expect(c.state).toBe("syn-sent");
    // nobody answers: the SYN goes again with a growing timeout, then "timed out"
    await new Promise((r) => setTimeout(r, 9000));
    expect(out.filter((o) => o.seg!.flags === TCP_SYN).length).toBe(5);
    expect(closed).toBe("timed out");
    expect(ep.open).toBe(0);
  }, 20_000);
});
