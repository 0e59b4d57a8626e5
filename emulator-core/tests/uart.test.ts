// The 16550's transmit FIFO as the guest sees it: the THRE interrupt comes when the FIFO empties (when full, at
// its time on the machine's instruction clock, on an LSR poll, or at once without FIFOs), never while it holds
// bytes, and the bytes reach the console in order at once whatever the FIFO does. Its state survives a snapshot.

import { describe, it, expect } from "vitest";
import { Uart16550, TX_DRAIN_INSTRUCTIONS } from "../src/machine/uart.ts";
import { SnapshotError, type StateValue } from "../src/snapshot/state-value.ts";
import { FakeIrq } from "./virtio-driver.ts";

const IER = 1, IIR = 2, FCR = 2, LSR = 5;
const THRI = 0x02;
const IIR_NONE = 0x01, IIR_THRI = 0x02;

function uart(fifo = true) {
  let now = 1000;
  const irq = new FakeIrq();
  const out: number[] = [];
  const u = new Uart16550(irq, (b) => out.push(...b), { clock: () => now });
  if (fifo) u.write(FCR, 1, 0x07);
  return { u, irq, out, advance: (n: number) => { now += n; u.drainTx(now); }, now: () => now };
}
const iir = (u: Uart16550) => u.read(IIR, 1) & 0x0f;

describe("16550 transmit FIFO", () => {
  it("raises THRE once the FIFO has emptied on the clock, not while it holds bytes", () => {
    const { u, irq, out, advance } = uart();
    u.write(IER, 1, THRI);
    expect(irq.level).toBe(true); // enabled with the FIFO empty: at once (Linux checks this at start-up)
    expect(iir(u)).toBe(IIR_THRI);
    expect(irq.level).toBe(false); // reading IIR took it
    for (const b of [0x61, 0x62, 0x0a]) u.write(0, 1, b);
    expect(u.txBusy).toBe(true);
    expect(u.txDue).toBe(1000 + TX_DRAIN_INSTRUCTIONS);
    advance(TX_DRAIN_INSTRUCTIONS - 1);
    expect(irq.level).toBe(false);
    expect(iir(u)).toBe(IIR_NONE);
    advance(1);
    expect(u.txBusy).toBe(false);
    expect(irq.level).toBe(true);
    expect(iir(u)).toBe(IIR_THRI);
    u.flush();
    expect(out).toEqual([0x61, 0x62, 0x0a]); // the bytes themselves never waited for the FIFO
  });

  it("empties a full FIFO at once: a driver writing 16 bytes a THRE interrupt gets the next one straight away", () => {
    const { u, irq } = uart();
    u.write(IER, 1, THRI);
    iir(u);
    for (let i = 0; i < 15; i++) u.write(0, 1, 0x30 + i);
    expect(irq.level).toBe(false);
    u.write(0, 1, 0x3f);
    expect(u.txBusy).toBe(false);
    expect(irq.level).toBe(true);
  });

  it("without FIFOs the holding register empties as each byte is written", () => {
    const { u, irq } = uart(false);
    u.write(IER, 1, THRI);
    iir(u);
    u.write(0, 1, 0x41);
    expect(u.txBusy).toBe(false);
    expect(irq.level).toBe(true);
  });

  it("a guest polling LSR finds the FIFO empty, and the THRE interrupt owed with it", () => {
    const { u, irq } = uart();
    u.write(IER, 1, THRI);
    iir(u);
    u.write(0, 1, 0x41);
    expect(irq.level).toBe(false);
    expect(u.read(LSR, 1) & 0x60).toBe(0x60);
    expect(irq.level).toBe(true);
    expect(iir(u)).toBe(IIR_THRI);
  });

  it("enabling THRI while the FIFO holds bytes raises it only when the FIFO empties", () => {
    const { u, irq, advance } = uart();
    u.write(0, 1, 0x41);
    u.write(IER, 1, THRI);
    expect(irq.level).toBe(false);
    expect(iir(u)).toBe(IIR_NONE);
    advance(TX_DRAIN_INSTRUCTIONS);
    expect(irq.level).toBe(true);
  });

  it("clearing the transmit FIFO (FCR bit 2) empties it", () => {
    const { u, irq } = uart();
    u.write(IER, 1, THRI);
    iir(u);
    u.write(0, 1, 0x41);
    u.write(FCR, 1, 0x05);
    expect(u.txBusy).toBe(false);
    expect(irq.level).toBe(true);
  });

  it("saves the FIFO's bytes and the time it has left; a restored UART empties it at the same point", () => {
    const a = uart();
    a.u.write(IER, 1, THRI);
    iir(a.u);
    a.u.write(0, 1, 0x41); a.u.write(0, 1, 0x42);
    a.advance(100);
    const saved = structuredClone(a.u.saveState());
    const b = uart();
    b.advance(5000); // another clock reading: the restore counts from its own
    b.u.restoreState(saved);
    expect(b.u.saveState()).toEqual(saved);
    expect(b.irq.level).toBe(false);
    expect(b.u.txDue - b.now()).toBe(a.u.txDue - a.now());
    b.advance(TX_DRAIN_INSTRUCTIONS - 101);
    expect(b.irq.level).toBe(false);
    b.advance(1);
    expect(b.irq.level).toBe(true);
  });

  it("restores a state saved before the FIFO was modelled as an empty FIFO", () => {
    const a = uart();
    a.u.write(IER, 1, THRI);
    const old = structuredClone(a.u.saveState()) as Record<string, StateValue>;
    delete old.txLevel; delete old.txDueIn;
    const b = uart();
    b.u.restoreState(old);
    expect(b.u.txBusy).toBe(false);
    expect(b.irq.level).toBe(true);
  });

  it("refuses a FIFO state that cannot be, unchanged", () => {
    const a = uart();
    a.u.write(0, 1, 0x41);
    const good = a.u.saveState() as Record<string, StateValue>;
    const b = uart();
    const before = b.u.saveState();
    for (const [bad, field] of [
      [{ ...good, txLevel: 16 }, /uart\.txLevel/], [{ ...good, txLevel: -1 }, /uart\.txLevel/],
      [{ ...good, txDueIn: TX_DRAIN_INSTRUCTIONS + 1 }, /uart\.txDueIn/], [{ ...good, txDueIn: 0.5 }, /uart\.txDueIn/],
    ] as const) {
      expect(() => b.u.restoreState(bad)).toThrow(SnapshotError);
      expect(() => b.u.restoreState(bad)).toThrow(field);
      expect(b.u.saveState()).toEqual(before);
    }
  });
});
