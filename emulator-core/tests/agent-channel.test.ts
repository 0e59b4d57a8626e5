// The control channel without a guest: the virtio-console device driven by the test driver (the multiport
// handshake Linux does, data both ways, flow control, hostile control messages, save/restore), the frame reader, and
// the host's AgentClient against a scripted agent (answers, timeouts, resets). A real guest's agent is in
// agent-linux.test.ts.

import { describe, it, expect } from "vitest";
import { VirtioConsole, CONSOLE_CTRL, AGENT_PORT_NAME, VIRTIO_CONSOLE_F_MULTIPORT } from "../src/machine/virtio/console.ts";
import { STATUS_NEEDS_RESET, REG } from "../src/machine/virtio/mmio.ts";
import { FrameReader, encodeFrame, T, AGENT_MAGIC, HEADER_LEN, type Frame } from "../src/agent/protocol.ts";
import { AgentClient, AgentNoAnswer, AgentError, type AgentPort } from "../src/agent/client.ts";
import { setup, pattern, type Driver, type Ram } from "./virtio-driver.ts";

const RXQ = 0, TXQ = 1, CRXQ = 2, CTXQ = 3;

function ctrlMsg(ram: Ram, id: number, event: number, value: number): bigint {
  const a = ram.alloc(8);
  ram.mem.setU32(a, id); ram.mem.setU16(a + 4n, event); ram.mem.setU16(a + 6n, value);
  return a;
}

/** Control messages the device put in the driver's control receive buffers. */
function readCtrl(drv: Driver, bufs: bigint[]): { id: number; event: number; value: number; name?: string }[] {
  return drv.used(CRXQ).map((u) => {
    const a = bufs[u.id];
    const m = drv.ram.mem;
    const out: { id: number; event: number; value: number; name?: string } = { id: m.u32(a), event: m.u16(a + 4n), value: m.u16(a + 6n) };
    if (u.len > 8) out.name = new TextDecoder().decode(m.view(a + 8n, u.len - 8));
    return out;
  });
}

/** A console device through Linux's handshake: DEVICE_READY, PORT_ADD, PORT_READY, PORT_NAME, PORT_OPEN. */
function handshake(opts: { pendingLimit?: number } = {}) {
  const device = new VirtioConsole(opts);
  const t = setup(device, [8, 8, 8, 8]);
  const { drv, ram } = t;
  // control receive buffers (Linux gives pages; the descriptor index is the buffer's index)
  const ctrlBufs: bigint[] = [];
  for (let i = 0; i < 4; i++) { const a = ram.alloc(256); ctrlBufs.push(a); drv.add(CRXQ, [{ addr: a, len: 256, write: true }]); }
  drv.kick(CRXQ);
  drv.add(CTXQ, [{ addr: ctrlMsg(ram, 0, CONSOLE_CTRL.DEVICE_READY, 1), len: 8 }]);
  drv.kick(CTXQ);
  const add = readCtrl(drv, ctrlBufs);
  drv.add(CTXQ, [{ addr: ctrlMsg(ram, 0, CONSOLE_CTRL.PORT_READY, 1), len: 8 }]);
  drv.kick(CTXQ);
  const named = readCtrl(drv, ctrlBufs);
  return { ...t, device, ctrlBufs, add, named };
}

describe("virtio-console (the agent channel)", () => {
  it("offers multiport with one port and names it in Linux's handshake", () => {
    const { device, add, named, drv } = handshake();
    expect(drv.deviceFeatures() & VIRTIO_CONSOLE_F_MULTIPORT).toBe(VIRTIO_CONSOLE_F_MULTIPORT);
    expect(drv.r(REG.Config + 4)).toBe(1); // max_nr_ports
    expect(add).toEqual([{ id: 0, event: CONSOLE_CTRL.PORT_ADD, value: 0 }]);
    expect(named).toEqual([
      { id: 0, event: CONSOLE_CTRL.PORT_NAME, value: 0, name: AGENT_PORT_NAME },
      { id: 0, event: CONSOLE_CTRL.PORT_OPEN, value: 1 },
    ]);
    expect(device.portReady).toBe(true);
  });

  it("carries bytes both ways: held for the guest until it gives buffers, and handed to the host as they come", () => {
    const { device, drv, ram } = handshake();
    const got: number[] = [];
    device.onData = (b) => got.push(...b);
    const msg = pattern(3000, 1);
    expect(device.send(msg)).toBe(true);
    expect(device.queued).toBe(3000);
    // two receive buffers of 2 KiB: the message is split across them, once a guest process opens the port (Linux
    // drops what comes for a closed port)
    const r1 = ram.alloc(2048), r2 = ram.alloc(2048);
    drv.add(RXQ, [{ addr: r1, len: 2048, write: true }]);
    drv.add(RXQ, [{ addr: r2, len: 2048, write: true }]);
    drv.kick(RXQ);
    expect(drv.used(RXQ)).toEqual([]);
    drv.add(CTXQ, [{ addr: ctrlMsg(ram, 0, CONSOLE_CTRL.PORT_OPEN, 1), len: 8 }]);
    drv.kick(CTXQ);
    const used = drv.used(RXQ);
    expect(used.map((u) => u.len)).toEqual([2048, 952]);
    expect([...ram.mem.view(r1, 2048), ...ram.mem.view(r2, 952)]).toEqual([...msg]);
    expect(device.queued).toBe(0);
    // guest to host
    const out = pattern(5000, 2);
    const w = ram.alloc(5000);
    ram.mem.write(w, out);
    drv.add(TXQ, [{ addr: w, len: 2000 }, { addr: w + 2000n, len: 3000 }]);
    drv.kick(TXQ);
    expect(drv.used(TXQ)).toEqual([{ id: expect.any(Number), len: 0 }]);
    expect(got).toEqual([...out]);
  });

  it("takes no more than its limit from the host, and says when there is room again", () => {
    const { device, drv, ram } = handshake({ pendingLimit: 4096 });
    drv.add(CTXQ, [{ addr: ctrlMsg(ram, 0, CONSOLE_CTRL.PORT_OPEN, 1), len: 8 }]);
    drv.kick(CTXQ);
    let drained = 0;
    device.onDrain = () => drained++;
    expect(device.send(new Uint8Array(3000))).toBe(true);
    expect(device.send(new Uint8Array(3000))).toBe(false); // would pass the limit: nothing taken
    expect(device.queued).toBe(3000);
    const r = ram.alloc(4096);
    drv.add(RXQ, [{ addr: r, len: 4096, write: true }]);
    drv.kick(RXQ);
    expect(drained).toBe(1);
    expect(device.send(new Uint8Array(3000))).toBe(true);
    // a chunk above the limit still goes through when nothing else waits
    const { device: d2 } = handshake({ pendingLimit: 1024 });
    expect(d2.send(new Uint8Array(5000))).toBe(true);
  });

  it("survives hostile control traffic: short messages and endless DEVICE_READY put it in NEEDS_RESET, nothing more", () => {
    const a = handshake();
    a.drv.add(CTXQ, [{ addr: a.ram.alloc(4), len: 4 }]);
    a.drv.kick(CTXQ);
    expect(a.drv.status & STATUS_NEEDS_RESET).toBe(STATUS_NEEDS_RESET);
    expect(a.errors.join()).toMatch(/control message of 4 bytes/);

    // DEVICE_READY over and over while the driver never takes the answers: bounded
    const device = new VirtioConsole();
    const b = setup(device, [64, 8, 8, 64]);
    for (let i = 0; i < 40; i++) b.drv.add(CTXQ, [{ addr: ctrlMsg(b.ram, 0, CONSOLE_CTRL.DEVICE_READY, 1), len: 8 }]);
    b.drv.kick(CTXQ);
    expect(b.drv.status & STATUS_NEEDS_RESET).toBe(STATUS_NEEDS_RESET);
    expect(b.errors.join()).toMatch(/not taken by the driver/);
    // a reset brings it back, with nothing left over
    b.drv.negotiate();
    expect(b.drv.status & STATUS_NEEDS_RESET).toBe(0);

    // messages for ports that do not exist are ignored
    const c = handshake();
    c.drv.add(CTXQ, [{ addr: ctrlMsg(c.ram, 7, CONSOLE_CTRL.PORT_READY, 1), len: 8 }]);
    c.drv.add(CTXQ, [{ addr: ctrlMsg(c.ram, 0xffffffff, CONSOLE_CTRL.PORT_OPEN, 1), len: 8 }]);
    c.drv.kick(CTXQ);
    expect(c.drv.status & STATUS_NEEDS_RESET).toBe(0);
    expect(readCtrl(c.drv, c.ctrlBufs)).toEqual([]);
  });

  it("tells the host when the guest opens and closes the port, and when the driver resets", () => {
    const { device, drv, ram } = handshake();
    const seen: string[] = [];
    device.onGuestOpen = (open) => seen.push(open ? "open" : "close");
    device.onReset = () => seen.push("reset");
    drv.add(CTXQ, [{ addr: ctrlMsg(ram, 0, CONSOLE_CTRL.PORT_OPEN, 1), len: 8 }]);
    drv.add(CTXQ, [{ addr: ctrlMsg(ram, 0, CONSOLE_CTRL.PORT_OPEN, 0), len: 8 }]);
    drv.add(CTXQ, [{ addr: ctrlMsg(ram, 0, CONSOLE_CTRL.PORT_OPEN, 1), len: 8 }]);
    drv.kick(CTXQ);
    device.send(new Uint8Array(10));
    drv.negotiate(); // a reset: the guest's side is gone, and what was pending with it
    expect(seen).toEqual(["open", "close", "open", "close", "reset"]);
    expect(device.queued).toBe(0);
    expect(device.portReady).toBe(false);
  });

  // Found by the hostile virtio driver (src/fuzz/virtio-campaign.ts), whose host answers from inside the callbacks as
  // AgentClient does (it sends CANCEL from inside onData).
  it("lets the host send from inside onData: the guest's chain is still the one completed, with all its bytes", () => {
    const { device, drv, ram } = handshake();
    drv.add(CTXQ, [{ addr: ctrlMsg(ram, 0, CONSOLE_CTRL.PORT_OPEN, 1), len: 8 }]);
    drv.kick(CTXQ);
    const got: number[] = [];
    device.onData = (b) => got.push(...b);
    const w = ram.alloc(1);
    drv.add(TXQ, [{ addr: w, len: 1 }]); // transmit descriptor 0, done with
    drv.kick(TXQ);
    expect(drv.used(TXQ)).toEqual([{ id: 0, len: 0 }]);
    got.length = 0;
    const r = ram.alloc(4096);
    const rxHead = drv.add(RXQ, [{ addr: r, len: 4096, write: true }]);
    drv.kick(RXQ);
    // the host answers the first piece of what the guest writes at once, which fills the guest's receive buffer
    device.onData = (b) => { got.push(...b); if (got.length === b.length) expect(device.send(pattern(10, 5))).toBe(true); };
    const out = pattern(100_000, 6); // more than one onData
    const a = ram.alloc(out.length);
    ram.mem.write(a, out);
    const txHead = drv.add(TXQ, [{ addr: a, len: out.length }]);
    drv.kick(TXQ);
    expect(drv.used(TXQ)).toEqual([{ id: txHead, len: 0 }]);
    expect(got.length).toBe(out.length);
    expect(got).toEqual([...out]);
    expect(drv.used(RXQ)).toEqual([{ id: rxHead, len: 10 }]);
    expect([...ram.mem.view(r, 10)]).toEqual([...pattern(10, 5)]);
    expect(drv.status & STATUS_NEEDS_RESET).toBe(0);
  });

  it("says there is room again when a driver reset drops what was pending (a host waiting to send would wait forever)", () => {
    const { device, drv } = handshake({ pendingLimit: 4096 });
    let drained = 0;
    device.onDrain = () => drained++;
    expect(device.send(new Uint8Array(3000))).toBe(true);
    expect(device.send(new Uint8Array(3000))).toBe(false);
    drv.w(REG.Status, 0);
    expect(device.queued).toBe(0);
    expect(drained).toBe(1);
  });

  it("refuses a transmit chain larger than Linux ever writes, without copying it (a guest cannot wedge the host)", () => {
    const { device, drv, errors } = handshake();
    let seen = 0;
    device.onData = (b) => { seen += b.length; };
    // the largest Linux writes (32 KiB through write(), a pipe's 1 MiB through splice) goes through
    drv.add(TXQ, [{ addr: 0x8000_0000n, len: 1 << 20 }]);
    drv.kick(TXQ);
    expect(drv.status & STATUS_NEEDS_RESET).toBe(0);
    expect(seen).toBe(1 << 20);
    seen = 0;
    // indirect tables of 1024 descriptors over all of RAM: a GiB in each chain
    const all = Array.from({ length: 1024 }, () => ({ addr: 0x8000_0000n, len: 1 << 20 }));
    for (let i = 0; i < 4; i++) drv.add(TXQ, all, { indirect: true });
    const t0 = performance.now();
    drv.kick(TXQ);
    expect(performance.now() - t0).toBeLessThan(100);
    expect(drv.status & STATUS_NEEDS_RESET).toBe(STATUS_NEEDS_RESET);
    expect(errors.join()).toMatch(/transmit chain of 1073741824 bytes/);
    expect(seen).toBe(0);
  });

  it("keeps what the host sends from inside the close's callbacks for the next process, not the one closing", () => {
    const { device, drv, ram } = handshake({ pendingLimit: 4096 });
    drv.add(CTXQ, [{ addr: ctrlMsg(ram, 0, CONSOLE_CTRL.PORT_OPEN, 1), len: 8 }]);
    drv.kick(CTXQ);
    expect(device.send(new Uint8Array(3000))).toBe(true);
    expect(device.send(new Uint8Array(3000))).toBe(false);
    const order: string[] = [];
    device.onGuestOpen = (open) => order.push(open ? "open" : "close");
    device.onDrain = () => { order.push("drain"); expect(device.send(pattern(10, 8))).toBe(true); };
    const r = ram.alloc(4096);
    const rxHead = drv.add(RXQ, [{ addr: r, len: 4096, write: true }]); // given, not kicked
    drv.add(CTXQ, [{ addr: ctrlMsg(ram, 0, CONSOLE_CTRL.PORT_OPEN, 0), len: 8 }]);
    drv.kick(CTXQ);
    expect(order).toEqual(["close", "drain"]);
    expect(drv.used(RXQ)).toEqual([]);
    expect(device.queued).toBe(10);
    drv.add(CTXQ, [{ addr: ctrlMsg(ram, 0, CONSOLE_CTRL.PORT_OPEN, 1), len: 8 }]);
    drv.kick(CTXQ);
    expect(drv.used(RXQ)).toEqual([{ id: rxHead, len: 10 }]);
    expect([...ram.mem.view(r, 10)]).toEqual([...pattern(10, 8)]);
  });

  it("keeps what is pending across save and restore, and refuses a state that is not one", () => {
    const { device } = handshake();
    device.send(pattern(100, 3));
    device.send(pattern(50, 4));
    const state = device.saveState();
    const copy = new VirtioConsole();
    copy.restoreState(state);
    expect(copy.queued).toBe(150);
    expect(copy.portReady).toBe(true);
    expect(() => copy.restoreState({ ...(state as object), pending: [7] })).toThrow(/pending\[0\]/);
    expect(() => copy.restoreState({ ...(state as object), ctrlOut: [new Uint8Array(3)] })).toThrow(/ctrlOut\[0\]/);
    expect(copy.queued).toBe(150); // a refused state changed nothing
  });
});

describe("agent frames", () => {
  it("are read back whole from any split, and a reader that lost its place finds the next frame", () => {
    const frames = [encodeFrame(T.EXEC, 1, pattern(10, 1)), encodeFrame(T.DATA, 2, pattern(70000, 2)), encodeFrame(T.END, 3)];
    const stream = new Uint8Array([0x54, 0x00, 0x99, ...frames.flatMap((f) => [...f])]); // garbage first
    for (const step of [1, 7, 4096, stream.length]) {
      const r = new FrameReader();
      const got: Frame[] = [];
      for (let i = 0; i < stream.length; i += step) r.push(stream.subarray(i, i + step), (f) => got.push(f));
      expect(got.map((f) => [f.type, f.id, f.payload.length])).toEqual([[T.EXEC, 1, 10], [T.DATA, 2, 70000], [T.END, 3, 0]]);
      expect([...got[1].payload]).toEqual([...pattern(70000, 2)]);
      expect(r.skipped).toBe(3);
    }
    // a header that claims more than a frame may hold is skipped too
    const bad = new Uint8Array(HEADER_LEN);
    new DataView(bad.buffer).setUint16(0, AGENT_MAGIC, true);
    new DataView(bad.buffer).setUint32(8, 0xffffffff, true);
    const r = new FrameReader();
    const got: Frame[] = [];
    r.push(new Uint8Array([...bad, ...encodeFrame(T.HELLO, 5)]), (f) => got.push(f));
    expect(got.map((f) => f.id)).toEqual([5]);
  });
});

/** A port whose guest side is a script: it sees each frame the client sends and may answer. */
function scriptedPort(answer: (f: Frame, reply: (type: number, id: number, payload?: Uint8Array) => void) => void, limit = Infinity) {
  const reader = new FrameReader();
  let queued = 0;
  const port: AgentPort & { reset(): void; drain(): void; sent: Frame[] } = {
    onData: null, onDrain: null, onReset: null, onGuestOpen: null, sent: [],
    send(bytes) {
      if (queued > 0 && queued + bytes.length > limit) return false;
      queued += bytes.length;
      reader.push(bytes, (f) => {
        port.sent.push(f);
        answer(f, (type, id, payload) => queueMicrotask(() => port.onData?.(encodeFrame(type, id, payload))));
      });
      return true;
    },
    reset() { port.onReset?.(); },
    drain() { queued = 0; port.onDrain?.(); },
  };
  return port;
}

const u32s = (...v: number[]) => { const b = new Uint8Array(4 * v.length); v.forEach((x, i) => new DataView(b.buffer).setInt32(4 * i, x, true)); return b; };

describe("AgentClient", () => {
  it("runs a command: output, exit status, and output beyond its limit dropped and said so", async () => {
    const port = scriptedPort((f, reply) => {
      if (f.type !== T.EXEC) return;
      reply(T.STDOUT, f.id, new TextEncoder().encode("hello "));
      reply(T.STDOUT, f.id, new TextEncoder().encode("world"));
      reply(T.STDERR, f.id, new TextEncoder().encode("warn"));
      reply(T.EXIT, f.id, u32s(3, 0, 0));
    });
    const c = new AgentClient(port);
    const r = await c.exec("anything");
    expect(new TextDecoder().decode(r.stdout)).toBe("hello world");
    expect(new TextDecoder().decode(r.stderr)).toBe("warn");
    expect([r.exitCode, r.signal, r.timedOut, r.truncated]).toEqual([3, 0, false, false]);
    const cut = await c.exec("anything", { maxOutput: 4 });
    expect(new TextDecoder().decode(cut.stdout)).toBe("hell");
    expect(cut.truncated).toBe(true);
    // the command and its time limit went in the request
    const req = port.sent.find((f) => f.type === T.EXEC)!;
    expect(new DataView(req.payload.buffer, req.payload.byteOffset).getUint32(0, true)).toBe(30_000);
    expect(new TextDecoder().decode(req.payload.subarray(4))).toBe("anything");
  });

  it("says 'no answer' when the guest never answers, and cancels the command", async () => {
    const port = scriptedPort(() => {});
    const c = new AgentClient(port);
    const t0 = performance.now();
    await expect(c.exec("sleep 100", { timeoutMs: 50, graceMs: 50 })).rejects.toThrow(AgentNoAnswer);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(95);
    expect(port.sent.map((f) => f.type)).toEqual([T.EXEC, T.CANCEL]);
    await expect(c.hello(30)).rejects.toThrow(/no answer from the guest agent/);
    await expect(c.getFile("/x", { idleTimeoutMs: 30 })).rejects.toThrow(/no progress reading \/x/);
  }, 15_000);

  it("fails what is in flight when the channel resets or the agent dies, not what a new agent will answer; all after close()", async () => {
    const port = scriptedPort(() => {});
    const c = new AgentClient(port);
    const a = c.exec("x", { timeoutMs: 60_000 });
    port.reset();
    await expect(a).rejects.toThrow(/reset its agent channel/);
    const b = c.getFile("/y");
    port.onGuestOpen?.(false); // the agent died
    await expect(b).rejects.toThrow(/agent stopped/);
    // a new agent says hello: that answers a hello() waiting for it, and fails nothing sent meanwhile
    const h = c.hello(5000);
    const d = c.exec("y", { timeoutMs: 60_000 });
    port.onData?.(encodeFrame(T.R_HELLO, 0, new TextEncoder().encode("tabvisor-agent 1")));
    expect(await h).toBe("tabvisor-agent 1");
    expect(c.agentVersion).toBe("tabvisor-agent 1");
    port.onData?.(encodeFrame(T.EXIT, port.sent.at(-1)!.id, u32s(0, 0, 0)));
    expect((await d).exitCode).toBe(0);
    c.close("gone");
    await expect(c.exec("x")).rejects.toThrow(/gone/);
  });

  it("puts a file in chunks, waiting while the channel is full, and gets one back", async () => {
    const files = new Map<string, Uint8Array>();
    let put: { id: number; path: string; parts: Uint8Array[] } | undefined;
    const port = scriptedPort((f, reply) => {
      const dec = new TextDecoder();
      if (f.type === T.PUT) put = { id: f.id, path: dec.decode(f.payload.subarray(12)), parts: [] };
      else if (f.type === T.DATA) put!.parts.push(f.payload);
      else if (f.type === T.END) {
        const all = new Uint8Array(put!.parts.reduce((n, p) => n + p.length, 0));
        let at = 0; for (const p of put!.parts) { all.set(p, at); at += p.length; }
        files.set(put!.path, all);
        reply(T.OK, f.id, new Uint8Array(8));
      } else if (f.type === T.GET) {
        const data = files.get(dec.decode(f.payload));
        if (!data) { reply(T.ERR, f.id, new Uint8Array([2, 0, 0, 0, ...new TextEncoder().encode("no such file")])); return; }
        const size = new Uint8Array(8); new DataView(size.buffer).setBigUint64(0, BigInt(data.length), true);
        reply(T.SIZE, f.id, size);
        for (let i = 0; i < data.length; i += 65536) reply(T.R_DATA, f.id, data.subarray(i, i + 65536));
        reply(T.R_END, f.id);
      }
    }, 200_000);
    const c = new AgentClient(port);
    const data = pattern(1_000_000, 9);
    const progress: number[] = [];
    const p = c.putFile("/root/uploads/f", data, { onProgress: (d) => progress.push(d) });
    // the channel takes about 200 KB before it is full: the client waits for room
    await new Promise((r) => setTimeout(r, 20));
    expect(progress.length).toBeLessThan(8);
    const pump = setInterval(() => port.drain(), 1);
    await p;
    clearInterval(pump);
    expect(progress.at(-1)).toBe(1_000_000);
    expect([...(await c.getFile("/root/uploads/f"))]).toEqual([...data]);
    const err = await c.getFile("/nope").catch((e) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).errno).toBe(2);
    await expect(c.getFile("/root/uploads/f", { maxBytes: 1000 })).rejects.toThrow(/more than the 1000 allowed/);
  });
});
