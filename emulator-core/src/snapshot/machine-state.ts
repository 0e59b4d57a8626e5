// A whole machine's state as one tree: the hart block, every device in bus order, the clock, RAM (its non-zero
// pages) and the disks' contents, so a snapshot needs nothing but itself (and the same machine description).
//
// Saving happens between run() calls, after every disk has finished its requests (a request in flight cannot be
// saved). Restoring goes into a freshly built machine of the same description, in this order: RAM, hart, PLIC,
// the other devices (each re-drives its interrupt line), the clock, and last the disks, whose backends may be
// files of the user's: everything else has been checked by then, and every disk's image before any disk is
// written, so a corrupt snapshot never reaches a disk. A disk is written a run of pages at a time from its image
// (ram.ts's format: the pages that are not zeros), zeros for the rest, never as one buffer of the whole disk.
// A disk over a read-only base image (a system disk fetched in chunks) is saved as the base's name and the blocks
// it has of its own (`own`): reading it whole would fetch the whole image. It restores only onto a disk over the
// same base that has no blocks of its own yet (a new one).

import type { Hart } from "../hart.ts";
import { baseBacked, BASE_BLOCK, type BlockBackend } from "../machine/virtio/backends.ts";
import type { VirtioBlk } from "../machine/virtio/blk.ts";
import type { MachineClock } from "../machine/clock.ts";
import { saveRam, restoreRam, PAGE_SIZE } from "./ram.ts";
import { SnapshotError, StateReader, type Stateful, type StateObject, type StateValue } from "./state-value.ts";

export interface MachineParts {
  hart: Hart;
  /** guest RAM */
  ram: Uint8Array;
  /** RAM is all zeros (a machine built to restore into): only the saved pages need writing */
  ramZeroed?: boolean;
  clock: MachineClock;
  /** the PLIC first, then the other devices in bus order, each under a name that identifies its kind */
  devices: { name: string; device: Stateful }[];
  disks: { backend: BlockBackend; blk: VirtioBlk }[];
  /** machine-level state outside the devices (the SBI timer) */
  firmware: Stateful;
  /** recomputes the hart's interrupt lines from the devices */
  updateLines(): void;
}

/** Waits until no disk has a request in flight. */
export async function quiesce(parts: MachineParts): Promise<void> {
  await Promise.all(parts.disks.map((d) => d.blk.whenIdle()));
}

async function readWhole(backend: BlockBackend): Promise<Uint8Array> {
  const bytes = new Uint8Array(backend.size);
  await backend.read(0, bytes);
  return bytes;
}

/** A disk's image from a snapshot (saveRam's format), checked whole. */
interface DiskImage {
  pages: number;
  /** a bit per page: the page is in `data` (else it is zeros) */
  present: Uint8Array;
  /** the present pages, one after another */
  data: Uint8Array;
}

/** Checks a disk's image against a disk of `size` bytes, as restoreRam does for RAM (with its messages), without
 *  writing anything. (restoreRam itself writes into a buffer of the whole disk.) */
function checkDiskImage(state: StateValue, size: number, what: string): DiskImage {
  const r = new StateReader(state, what);
  r.num("pageSize", PAGE_SIZE, PAGE_SIZE);
  const pages = r.num("pages", 0, 1 << 24);
  if (pages * PAGE_SIZE !== size) {
    throw new SnapshotError(`the snapshot holds ${pages * PAGE_SIZE / 1048576} MiB of ${what}, this machine has ${size / 1048576} MiB`);
  }
  const present = r.bytes("present", { length: Math.ceil(pages / 8) });
  let count = 0;
  for (let p = 0; p < pages; p++) if (present[p >> 3] & (1 << (p & 7))) count++;
  const data = r.bytes("data", { length: count * PAGE_SIZE });
  return { pages, present, data };
}

/** Pages per write to a disk: 1 MiB. */
const RUN_PAGES = 256;

/** Writes a checked image to a disk: runs of up to RUN_PAGES present pages from the image, runs of absent ones as
 *  zeros (the disk may hold other contents: a file of the user's). */
async function writeDiskImage(backend: BlockBackend, img: DiskImage): Promise<void> {
  const has = (p: number) => (img.present[p >> 3] & (1 << (p & 7))) !== 0;
  const zeros = new Uint8Array(Math.min(RUN_PAGES, img.pages) * PAGE_SIZE);
  let o = 0;
  for (let p = 0; p < img.pages;) {
    const present = has(p);
    let end = p + 1;
    while (end < img.pages && end - p < RUN_PAGES && has(end) === present) end++;
    const n = (end - p) * PAGE_SIZE;
    let src = present ? img.data.subarray(o, o + n) : zeros.subarray(0, n);
    if (present) o += n;
    // an asynchronous backend may keep or transfer what it is handed (backends.ts): its own copy
    if (backend.async) src = src.slice();
    await backend.write(p * PAGE_SIZE, src);
    p = end;
  }
  await backend.flush();
}

/** A disk's own blocks over its base, as saved: block numbers (u32, little-endian) and their contents. */
interface OwnBlocks {
  blocks: Uint32Array;
  data: Uint8Array;
}

function saveOwnBlocks(own: { blocks: number[]; data: Uint8Array }): StateObject {
  const numbers = new Uint8Array(own.blocks.length * 4);
  const v = new DataView(numbers.buffer);
  own.blocks.forEach((b, i) => v.setUint32(i * 4, b, true));
  return { blockSize: BASE_BLOCK, blocks: numbers, data: own.data };
}

/** Checks a disk's own blocks from a snapshot against a disk of `size` bytes, without writing anything. */
function checkOwnBlocks(state: StateValue, size: number, what: string): OwnBlocks {
  const r = new StateReader(state, what);
  r.num("blockSize", BASE_BLOCK, BASE_BLOCK);
  const limit = Math.ceil(size / BASE_BLOCK);
  const numbers = r.bytes("blocks", { maxLength: limit * 4 });
  if (numbers.length % 4 !== 0) throw new SnapshotError(`${what}.blocks: not a list of 32-bit block numbers`);
  const v = new DataView(numbers.buffer, numbers.byteOffset, numbers.length);
  const blocks = new Uint32Array(numbers.length / 4);
  for (let i = 0; i < blocks.length; i++) {
    blocks[i] = v.getUint32(i * 4, true);
    if (blocks[i] >= limit || (i > 0 && blocks[i] <= blocks[i - 1])) {
      throw new SnapshotError(`${what}.blocks: block ${blocks[i]} is out of order or past the disk's end (${limit} blocks)`);
    }
  }
  const data = r.bytes("data", { length: blocks.length * BASE_BLOCK });
  return { blocks, data };
}

/** Writes a disk's own blocks back, runs of consecutive blocks at a time (whole blocks: nothing is read from the
 *  base). */
async function writeOwnBlocks(backend: BlockBackend, own: OwnBlocks): Promise<void> {
  for (let i = 0; i < own.blocks.length;) {
    let end = i + 1;
    while (end < own.blocks.length && end - i < RUN_PAGES && own.blocks[end] === own.blocks[end - 1] + 1) end++;
    let src = own.data.subarray(i * BASE_BLOCK, end * BASE_BLOCK);
    if (backend.async) src = src.slice();
    await backend.write(own.blocks[i] * BASE_BLOCK, src);
    i = end;
  }
  await backend.flush();
}

/** The machine's state. Call between run() calls, after quiesce(); the guest must not run until it resolves. */
export async function saveMachine(parts: MachineParts, opts: { withoutRam?: boolean; withoutDisks?: boolean } = {}): Promise<StateObject> {
  parts.updateLines(); // the hart's copy of mtime and its interrupt lines as a restore will recompute them
  const hart = parts.hart.saveState();
  const devices = parts.devices.map(({ name, device }) => ({ name, state: device.saveState() }));
  const state: StateObject = {
    hart: { layoutVersion: hart.layoutVersion, block: hart.block },
    devices,
    firmware: parts.firmware.saveState(),
    clock: parts.clock.saveState(),
    // a live migration sends RAM page by page before this (migration.ts)
    ram: opts.withoutRam ? null : saveRam(parts.ram),
    disks: [],
  };
  // Disks last and possibly asynchronous: nothing above may change while their contents are read.
  const disks: StateValue[] = [];
  for (const { backend } of parts.disks) {
    // a read-only disk cannot have changed: its size is enough to check it is the same one; without disks, the
    // embedder hands the contents over itself (a restore then leaves the disk as it finds it)
    const skip = backend.readOnly || opts.withoutDisks;
    const based = baseBacked(backend);
    if (based?.baseId !== undefined) {
      disks.push({ size: backend.size, readOnly: !!backend.readOnly, image: null, base: based.baseId, own: skip ? null : saveOwnBlocks(based.ownBlocks()) });
      continue;
    }
    const image = skip ? null : saveRam(await readWhole(backend));
    disks.push({ size: backend.size, readOnly: !!backend.readOnly, image });
  }
  state.disks = disks;
  return state;
}

/** Restores a saved state into a freshly built machine of the same description. Throws SnapshotError (naming
 *  what is wrong) for a state that does not fit; the machine is then to be thrown away, but no disk was touched. */
export async function restoreMachine(parts: MachineParts, state: StateValue, opts: { skipDisks?: boolean; ramInPlace?: boolean } = {}): Promise<void> {
  const r = new StateReader(state, "machine");
  const hartState = r.obj("hart");
  const devices = r.array("devices", 64);
  if (devices.length !== parts.devices.length) {
    throw new SnapshotError(`the snapshot's machine has ${devices.length} devices, this one ${parts.devices.length}`);
  }
  const disks = r.array("disks", 64);
  if (disks.length !== parts.disks.length) throw new SnapshotError(`the snapshot's machine has ${disks.length} disks, this one ${parts.disks.length}`);
  // every disk's image checked before anything is written (to RAM, the devices or any disk)
  const diskImages = disks.map((d, i): DiskImage | OwnBlocks | null => {
    const dr = new StateReader(d, `machine.disks[${i}]`);
    const { backend } = parts.disks[i];
    const size = dr.num("size", 0);
    if (size !== backend.size) throw new SnapshotError(`disk ${i} of the snapshot has ${size} bytes, this machine's ${backend.size}`);
    const based = baseBacked(backend);
    const base = dr.has("base") ? dr.str("base", 256) : undefined;
    if (base !== based?.baseId) {
      const over = (id: string | undefined) => id === undefined ? "a blank disk" : `over the image ${id}`;
      throw new SnapshotError(`disk ${i} of the snapshot is ${over(base)}, this machine's is ${over(based?.baseId)}`);
    }
    if (base !== undefined) {
      const own = dr.raw("own");
      if (own === null || opts.skipDisks) return null;
      if (backend.readOnly) throw new SnapshotError(`disk ${i} is read-only here but was writable in the snapshot`);
      // the blocks not listed are the base's: a disk that already has blocks of its own would keep them
      if (based!.ownBlockCount > 0) throw new SnapshotError(`disk ${i} already holds blocks of its own: a disk over an image is restored only into a new one`);
      return checkOwnBlocks(own, size, `machine.disks[${i}].own`);
    }
    const image = dr.raw("image");
    // A template's disks are empty and the VM's own hold its files: with skipDisks they stay as they are.
    if (image === null || opts.skipDisks) return null;
    if (backend.readOnly) throw new SnapshotError(`disk ${i} is read-only here but was writable in the snapshot`);
    return checkDiskImage(image, backend.size, `disk ${i}`);
  });

  const ram = r.raw("ram");
  if (ram === null) {
    if (!opts.ramInPlace) throw new SnapshotError("the snapshot holds no RAM");
  } else restoreRam(parts.ram, ram, "RAM", parts.ramZeroed);
  parts.hart.restoreState({ layoutVersion: hartState.num("layoutVersion", 0, 0xffffffff), block: hartState.bytes("block") });
  devices.forEach((d, i) => {
    const dr = new StateReader(d, `machine.devices[${i}]`);
    const name = dr.str("name", 64);
    if (name !== parts.devices[i].name) throw new SnapshotError(`device ${i} of the snapshot is ${name}, this machine's is ${parts.devices[i].name}`);
    parts.devices[i].device.restoreState(dr.raw("state"));
  });
  parts.firmware.restoreState(r.raw("firmware"));
  parts.clock.restoreState(r.raw("clock"));
  parts.updateLines();

  for (let i = 0; i < diskImages.length; i++) {
    const image = diskImages[i];
    if (image === null) continue;
    if ("present" in image) await writeDiskImage(parts.disks[i].backend, image);
    else await writeOwnBlocks(parts.disks[i].backend, image);
  }
}
