// What a machine is made of, in two parts. The MachineSpec is plain data (JSON, structured clone) that says which
// board to build: RAM, kernel command line, clock mode and the virtio devices. A snapshot stores it, so the same
// board can be built again to restore into; validateSpec() checks one read back from an untrusted file. The
// attachments are what is not data: the host objects behind the devices (disk backends, where frames go), the
// console's sink and the boot images.
//
// Every embedder hands both to Machine.create(), which builds the board itself, so a description always gives the
// same board: virtio devices in the fixed order disks, network cards, rng, balloon, agent channel, device i in
// slot i (guest physical VIRTIO_BASE + i * VIRTIO_STRIDE, PLIC interrupt 1 + i). Linux names disks vda, vdb, ... and cards
// eth0, eth1, ... in that order.

import { MAX_RAM_MIB } from "../layout.ts";
import type { BlockBackend, EntropySource, NetBackend } from "./virtio/backends.ts";

export const VIRTIO_BASE = 0x1000_1000n;
export const VIRTIO_STRIDE = 0x1000n;
export const VIRTIO_SLOTS = 8;

export interface DiskSpec {
  /** bytes; a whole number of 512-byte sectors, and the backend's size */
  sizeBytes: number;
  /** the guest sees a read-only disk (default: whatever the backend is) */
  readOnly?: boolean;
  /** the disk's serial number (virtio-blk GET_ID): up to 20 printable ASCII characters */
  serial?: string;
  /** the read-only image the disk starts from (its DiskBase.id, e.g. a chunked system image's name, layered-disk.ts);
   *  absent: the disk starts as zeros. The attached backend must be over this image: a snapshot of such a disk holds
   *  only the blocks written over it. */
  base?: string;
}

export interface NicSpec {
  /** 6 bytes, a unicast address */
  mac: number[];
}

/** virtio-balloon features; both default to on */
export interface BalloonSpec {
  stats?: boolean;
  deflateOnOom?: boolean;
}

export interface MachineSpec {
  ramMiB: number;
  /** the kernel command line */
  cmdline: string;
  /** mtime follows retired instructions instead of host time: repeatable runs */
  deterministic: boolean;
  disks: DiskSpec[];
  nics: NicSpec[];
  /** a virtio-rng device */
  rng: boolean;
  /** a virtio-balloon device (true: with the default features) */
  balloon: boolean | BalloonSpec;
  /** a virtio-console with one port, the host's control channel to the guest's agent (emulator-core/src/agent).
   *  Optional in a description read back: snapshots from before it existed have none. */
  agent: boolean;
}

/** What an embedder may leave out; makeSpec() fills in the rest. */
export type MachineSpecInput = Partial<MachineSpec> & Pick<MachineSpec, "ramMiB">;

export const DEFAULT_CMDLINE = "console=ttyS0";
/** Linux's COMMAND_LINE_SIZE on RISC-V, terminating NUL included */
export const MAX_CMDLINE_BYTES = 1023;
export const MAX_SERIAL_CHARS = 20;
/** The largest disk: 64 GiB, the most a snapshot's disk image can describe (2^24 pages of 4 KiB, snapshot/ram.ts).
 *  The dashboard offers disks of up to 256 MiB (and takes up to 1 GiB as one of its own, web/src/lab.ts); Node's
 *  are image files. A description read from a snapshot file is taken as is, and a restore writes every byte of
 *  every disk, so the limit also bounds what a crafted file can ask of it. */
export const MAX_DISK_BYTES = 64 * 2 ** 30;

/** A machine description that cannot be built: names the field and what is wrong with it. */
export class MachineSpecError extends Error {
  constructor(readonly field: string, problem: string) {
    super(`machine description: ${field} ${problem}`);
  }
}

/** A complete, checked description from the fields an embedder cares about (fields left out or undefined get
 *  the defaults: the console on ttyS0, host time, no disks or cards, an rng, no balloon, the agent channel). */
export function makeSpec(input: MachineSpecInput): MachineSpec {
  const given = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined));
  return validateSpec({
    cmdline: DEFAULT_CMDLINE, deterministic: false, disks: [], nics: [], rng: true, balloon: false, agent: true, ...given,
  });
}

const SPEC_KEYS = ["ramMiB", "cmdline", "deterministic", "disks", "nics", "rng", "balloon", "agent"];

/** Checks a value from outside (a snapshot file, a message) and returns it as a fresh MachineSpec; throws
 *  MachineSpecError naming the first bad field. Every field must be there (but `agent`, which older snapshots do not
 *  have: absent means none); unknown fields are refused too, since
 *  a description this version does not understand would build a different machine than the one it describes. */
export function validateSpec(value: unknown): MachineSpec {
  const o = record(value, "the description");
  onlyKeys(o, SPEC_KEYS, "");
  const ramMiB = o.ramMiB;
  if (typeof ramMiB !== "number" || !Number.isInteger(ramMiB) || ramMiB < 1 || ramMiB > MAX_RAM_MIB) {
    throw new MachineSpecError("ramMiB", `must be a whole number of MiB from 1 to ${MAX_RAM_MIB}, not ${show(ramMiB)}`);
  }
  const cmdline = o.cmdline;
  if (typeof cmdline !== "string") throw new MachineSpecError("cmdline", `must be a string, not ${show(cmdline)}`);
  if (cmdline.includes("\0")) throw new MachineSpecError("cmdline", "must not contain NUL characters");
  if (new TextEncoder().encode(cmdline).length > MAX_CMDLINE_BYTES) {
    throw new MachineSpecError("cmdline", `is longer than Linux takes (${MAX_CMDLINE_BYTES} bytes)`);
  }
  const deterministic = bool(o.deterministic, "deterministic");
  const disks = list(o.disks, "disks").map((d, i) => disk(d, `disks[${i}]`));
  const nics = list(o.nics, "nics").map((n, i) => nic(n, `nics[${i}]`));
  const rng = bool(o.rng, "rng");
  const balloon = balloonSpec(o.balloon);
  const agent = o.agent === undefined ? false : bool(o.agent, "agent");
  const spec: MachineSpec = { ramMiB, cmdline, deterministic, disks, nics, rng, balloon, agent };
  const devices = virtioDevices(spec).length;
  if (devices > VIRTIO_SLOTS) {
    throw new MachineSpecError("disks, nics, rng, balloon and agent", `need ${devices} virtio slots; the board has ${VIRTIO_SLOTS}`);
  }
  return spec;
}

export type VirtioKind = "disk" | "nic" | "rng" | "balloon" | "agent";

/** One virtio device of a description, where it sits and which interrupt it raises. */
export interface VirtioSlot {
  kind: VirtioKind;
  /** index among the devices of its kind (disks[index], nics[index]) */
  index: number;
  slot: number;
  base: bigint;
  irq: number;
}

/** The board's virtio devices in slot order: disks, then network cards, then rng, balloon, agent channel (last, so
 *  that adding it moved no other device). */
export function virtioDevices(spec: MachineSpec): VirtioSlot[] {
  const kinds: [VirtioKind, number][] = [
    ["disk", spec.disks.length], ["nic", spec.nics.length], ["rng", spec.rng ? 1 : 0], ["balloon", spec.balloon ? 1 : 0],
    ["agent", spec.agent ? 1 : 0],
  ];
  const out: VirtioSlot[] = [];
  for (const [kind, count] of kinds) {
    for (let index = 0; index < count; index++) {
      const slot = out.length;
      out.push({ kind, index, slot, base: VIRTIO_BASE + VIRTIO_STRIDE * BigInt(slot), irq: 1 + slot });
    }
  }
  return out;
}

/** The host side of a network card. */
export interface NicAttachment {
  /** where the frames the guest sends go (may also be set later on the device: machine.nics[i].backend) */
  backend?: NetBackend;
  /** carrier at power-on (default up) */
  linkUp?: boolean;
}

/** The kernel (a RISC-V Linux Image) and initramfs the machine boots, and boots again on every reboot. */
export interface BootImages {
  kernel: Uint8Array;
  initrd?: Uint8Array;
}

/** What a MachineSpec needs from its host. */
export interface MachineAttachments {
  boot: BootImages;
  /** one per spec.disks entry, in order, each exactly spec.disks[i].sizeBytes long */
  disks?: BlockBackend[];
  /** one per spec.nics entry, in order (missing ones: no backend yet, link up) */
  nics?: (NicAttachment | undefined)[];
  /** called with console output (batched) */
  onConsole?: (bytes: Uint8Array) => void;
  /** randomness for virtio-rng (default: crypto.getRandomValues) */
  entropy?: EntropySource;
  /** an asynchronous disk finished a request (it may have interrupted the guest): an idle guest must wake up */
  wake?: () => void;
}

function record(v: unknown, field: string): Record<string, unknown> {
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw new MachineSpecError(field, `must be an object, not ${show(v)}`);
  return v as Record<string, unknown>;
}

function onlyKeys(o: Record<string, unknown>, keys: string[], prefix: string): void {
  for (const k of Object.keys(o)) {
    if (!keys.includes(k)) throw new MachineSpecError(prefix + k, "is not a field of a machine description");
  }
}

function bool(v: unknown, field: string): boolean {
  if (typeof v !== "boolean") throw new MachineSpecError(field, `must be true or false, not ${show(v)}`);
  return v;
}

function list(v: unknown, field: string): unknown[] {
  if (!Array.isArray(v)) throw new MachineSpecError(field, `must be an array, not ${show(v)}`);
  if (v.length > VIRTIO_SLOTS) throw new MachineSpecError(field, `has ${v.length} entries; the board has ${VIRTIO_SLOTS} virtio slots`);
  return v;
}

function disk(v: unknown, field: string): DiskSpec {
  const o = record(v, field);
  onlyKeys(o, ["sizeBytes", "readOnly", "serial", "base"], `${field}.`);
  const size = o.sizeBytes;
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size <= 0 || size % 512 !== 0) {
    throw new MachineSpecError(`${field}.sizeBytes`, `must be a positive whole number of 512-byte sectors, not ${show(size)}`);
  }
  if (size > MAX_DISK_BYTES) {
    throw new MachineSpecError(`${field}.sizeBytes`, `must be at most ${MAX_DISK_BYTES} (64 GiB, the largest disk a snapshot holds), not ${show(size)}`);
  }
  const d: DiskSpec = { sizeBytes: size };
  if (o.readOnly !== undefined) d.readOnly = bool(o.readOnly, `${field}.readOnly`);
  if (o.serial !== undefined) {
    const s = o.serial;
    if (typeof s !== "string" || s.length > MAX_SERIAL_CHARS || /[^\x20-\x7e]/.test(s)) {
      throw new MachineSpecError(`${field}.serial`, `must be up to ${MAX_SERIAL_CHARS} printable ASCII characters, not ${show(s)}`);
    }
    d.serial = s;
  }
  if (o.base !== undefined) {
    const b = o.base;
    if (typeof b !== "string" || !/^[\w.:@-]{1,128}$/.test(b)) {
      throw new MachineSpecError(`${field}.base`, `must name an image in up to 128 letters, digits and ._:@-, not ${show(b)}`);
    }
    d.base = b;
  }
  return d;
}

function nic(v: unknown, field: string): NicSpec {
  const o = record(v, field);
  onlyKeys(o, ["mac"], `${field}.`);
  const mac = o.mac;
  if (!Array.isArray(mac) || mac.length !== 6 || mac.some((b) => typeof b !== "number" || !Number.isInteger(b) || b < 0 || b > 255)) {
    throw new MachineSpecError(`${field}.mac`, `must be 6 numbers from 0 to 255, not ${show(mac)}`);
  }
  // a group address as a source breaks every switch and ARP table it reaches
  if (mac[0] & 1) throw new MachineSpecError(`${field}.mac`, "must be a unicast address (the low bit of the first byte clear)");
  return { mac: [...mac] };
}

function balloonSpec(v: unknown): boolean | BalloonSpec {
  if (typeof v === "boolean") return v;
  const o = record(v, "balloon");
  onlyKeys(o, ["stats", "deflateOnOom"], "balloon.");
  const b: BalloonSpec = {};
  if (o.stats !== undefined) b.stats = bool(o.stats, "balloon.stats");
  if (o.deflateOnOom !== undefined) b.deflateOnOom = bool(o.deflateOnOom, "balloon.deflateOnOom");
  return b;
}

function show(v: unknown): string {
  if (v === undefined) return "missing";
  try {
    const s = JSON.stringify(v);
    if (s !== undefined) return s.length > 40 ? s.slice(0, 37) + "..." : s;
  } catch { /* cyclic or a bigint */ }
  return typeof v;
}
