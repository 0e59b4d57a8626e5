// The console's SPSC byte ring: order, wrap-around, full and empty, counters past 2^31, and bytes that cross
// between two threads.

import { describe, it, expect } from "vitest";
import { Worker } from "node:worker_threads";
import { ByteRing } from "../shared/ring.ts";

describe("ByteRing", () => {
  it("keeps bytes in order across wrap-around and reports room", () => {
    const r = ByteRing.create(16);
    expect(r.available()).toBe(0);
    expect(r.free()).toBe(16);
    expect(r.write(Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]))).toBe(10);
    expect(Array.from(r.read(7))).toEqual([1, 2, 3, 4, 5, 6, 7]);
    // 3 left; 13 of room, the write wraps past the end of the buffer
    expect(r.write(Uint8Array.from({ length: 20 }, (_, i) => 100 + i))).toBe(13);
    expect(r.free()).toBe(0);
    expect(r.write(Uint8Array.of(1))).toBe(0); // full: nothing goes in, nothing is overwritten
    expect(Array.from(r.read())).toEqual([8, 9, 10, ...Array.from({ length: 13 }, (_, i) => 100 + i)]);
    expect(r.read().length).toBe(0);
  });

  it("survives its counters wrapping around 2^32", () => {
    const r = ByteRing.create(8);
    const idx = new Int32Array(r.buffer, 0, 2);
    idx[0] = idx[1] = 0x7ffffffc; // both counters just below the int32 sign flip
    let next = 0, expectNext = 0;
    for (let round = 0; round < 1000; round++) {
      const n = 1 + (round % 7);
      const chunk = Uint8Array.from({ length: n }, () => next++ & 0xff);
      const put = r.write(chunk);
      next -= n - put;
      for (const b of r.read(1 + (round % 5))) expect(b).toBe(expectNext++ & 0xff);
    }
    for (const b of r.read()) expect(b).toBe(expectNext++ & 0xff);
    expect(expectNext).toBe(next);
  });

  it("rejects a capacity that is not a power of two", () => {
    expect(() => ByteRing.create(100)).toThrow(/power of two/);
  });

  it("carries a byte stream from one thread to another intact", async () => {
    const TOTAL = 1 << 20;
    const r = ByteRing.create(4096);
    // The consumer runs in a worker thread (plain JS, the same algorithm as read()), checking every byte.
    const worker = new Worker(`
      const { parentPort, workerData } = require("node:worker_threads");
      const { buffer, capacity, total } = workerData;
      const idx = new Int32Array(buffer, 0, 2);
      const data = new Uint8Array(buffer, 64, capacity);
      let got = 0, bad = -1;
      while (got < total) {
        const tail = Atomics.load(idx, 1), head = Atomics.load(idx, 0);
        const n = (head - tail) >>> 0;
        if (n === 0) continue;
        for (let i = 0; i < n; i++) if (bad < 0 && data[(tail + i) & (capacity - 1)] !== ((got + i) * 7) % 251) bad = got + i;
        got += n;
        Atomics.store(idx, 1, (tail + n) | 0);
      }
      parentPort.postMessage({ got, bad });
    `, { eval: true, workerData: { buffer: r.buffer, capacity: r.capacity, total: TOTAL } });
    const done = new Promise<{ got: number; bad: number }>((res, rej) => { worker.once("message", res); worker.once("error", rej); });
    let sent = 0;
    while (sent < TOTAL) {
      const n = Math.min(TOTAL - sent, 1 + (sent % 1500));
      const chunk = Uint8Array.from({ length: n }, (_, i) => ((sent + i) * 7) % 251);
      let off = 0;
      while (off < n) off += r.write(chunk.subarray(off));
      sent += n;
    }
    const { got, bad } = await done;
    await worker.terminate();
    expect(got).toBe(TOTAL);
    expect(bad).toBe(-1);
  });
});
