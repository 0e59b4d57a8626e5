// Guest RAM (and disk images) in a snapshot: only the pages that are not all zeros (a booted 256 MiB guest touches
// a few tens of MiB), as a bitmap of which pages are present and their contents one after another.

import { SnapshotError, StateReader, type StateValue } from "./state-value.ts";

export const PAGE_SIZE = 4096;

/** The indices of the 4 KiB pages of ram that are not all zeros, in order. Reading a page the guest never touched
 *  maps nothing on the host; the check ORs eight words at a time, which is what makes a scan of 256 MiB take tens
 *  of milliseconds, not a hundred. */
export function nonZeroPages(ram: Uint8Array): number[] {
  if (ram.length % PAGE_SIZE !== 0 || ram.byteOffset % 4 !== 0) throw new Error("guest RAM must be whole, aligned pages");
  const w = new Int32Array(ram.buffer, ram.byteOffset, ram.length >> 2);
  const PAGE_WORDS = PAGE_SIZE >> 2;
  const out: number[] = [];
  for (let at = 0; at < w.length; at += PAGE_WORDS) {
    let any = 0;
    for (let i = at; i < at + PAGE_WORDS; i += 8) any |= w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7];
    if (any !== 0) out.push(at / PAGE_WORDS);
  }
  return out;
}

/** The non-zero pages of ram (a copy). */
export function saveRam(ram: Uint8Array): StateValue {
  const pages = ram.length / PAGE_SIZE;
  const present = new Uint8Array(Math.ceil(pages / 8));
  const nonZero = nonZeroPages(ram);
  const data = new Uint8Array(nonZero.length * PAGE_SIZE);
  nonZero.forEach((p, i) => {
    present[p >> 3] |= 1 << (p & 7);
    data.set(ram.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE), i * PAGE_SIZE);
  });
  return { pageSize: PAGE_SIZE, pages, present, data };
}

/** Writes a saved RAM image into ram (of the same size), zeroing every page it does not hold (unless `zeroed`
 *  says ram is all zeros already, as a new machine's is). Checks the image whole before writing anything. */
export function restoreRam(ram: Uint8Array, state: StateValue, what = "RAM", zeroed = false): void {
  const r = new StateReader(state, what === "RAM" ? "ram" : what);
  const pageSize = r.num("pageSize", PAGE_SIZE, PAGE_SIZE);
  const pages = r.num("pages", 0, 1 << 24);
  if (pages * pageSize !== ram.length) {
    throw new SnapshotError(`the snapshot holds ${pages * pageSize / 1048576} MiB of ${what}, this machine has ${ram.length / 1048576} MiB`);
  }
  const present = r.bytes("present", { length: Math.ceil(pages / 8) });
  let count = 0;
  for (let p = 0; p < pages; p++) if (present[p >> 3] & (1 << (p & 7))) count++;
  const data = r.bytes("data", { length: count * PAGE_SIZE });
  // Runs of present pages are copied at once, runs of absent ones zeroed at once (or skipped when ram is zeroed):
  // a 256 MiB machine has 65 536 pages, and a view per page was most of a restore's host time.
  let o = 0;
  for (let p = 0; p < pages;) {
    const isPresent = (present[p >> 3] & (1 << (p & 7))) !== 0;
    if (!isPresent && zeroed && present[p >> 3] === 0 && (p & 7) === 0) { p += 8; continue; } // eight absent pages
    let end = p + 1;
    while (end < pages && ((present[end >> 3] & (1 << (end & 7))) !== 0) === isPresent) end++;
    const n = (end - p) * PAGE_SIZE;
    if (isPresent) { ram.set(data.subarray(o, o + n), p * PAGE_SIZE); o += n; }
    else if (!zeroed) ram.fill(0, p * PAGE_SIZE, end * PAGE_SIZE);
    p = end;
  }
}
