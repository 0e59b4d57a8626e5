// A hostile virtio driver for fuzzing the machine's virtio devices from inside the guest: a small fixed S-mode
// program (an interpreter) booted by the machine like a Linux kernel, and an action script generated on the host
// from a seed and placed right behind the interpreter in the same Image. Each action is 32 bytes
// {op, addr, value, arg} (u64 each, little-endian): store or load 1/2/4/8 bytes at any address (virtio registers,
// config space, the PLIC, guest RAM where rings, descriptors and buffers are laid out), wait for an interrupt (an
// SBI timer bounds every wait), load a word and store it back elsewhere (PLIC claim/complete, InterruptStatus to
// InterruptACK), and end (SBI system reset: power off). Faulting accesses trap to a handler that skips them; past
// TRAP_LIMIT traps it powers off reporting failure.
//
// The device work happens as the guest's stores reach the MMIO registers, so the devices see exactly what a guest
// kernel could do: descriptor tables, avail rings and registers written in program order, interrupts taken (or not)
// in between. Actions are generated "nearly valid": a correct device setup and request with one hostile twist
// (a bad register value, a bad descriptor, a jump of avail.idx, a reset mid-request...), because wholly random bytes
// stop at the first check. The script is deterministic per seed.

import { RAM_BASE } from "../layout.ts";
import { Rng, bType, iType, jType, rType, sType, uType } from "./program.ts";
import { REG, STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_DRIVER_OK, STATUS_FEATURES_OK, STATUS_FAILED, STATUS_NEEDS_RESET } from "../machine/virtio/mmio.ts";
import { VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from "../machine/virtio/queue.ts";

export const OP = { End: 0, Store1: 1, Store2: 2, Store4: 3, Store8: 4, Load1: 5, Load2: 6, Load4: 7, Load8: 8, Wait: 9, Echo: 10 } as const;
export const ACTION_BYTES = 32;
/** Traps the handler skips before it gives up (power off, reason: failure). */
export const TRAP_LIMIT = 2000;

/** Where the machine loads the Image (text_offset 0x200000, as a Linux Image asks). */
export const IMAGE_ADDR = RAM_BASE + 0x200000n;
export const HEADER_BYTES = 64;

// ---- a small assembler: the instructions the interpreter uses, and branches to labels ----

const ZERO = 0, T0 = 5, T1 = 6, T2 = 7, S0 = 8, S1 = 9, A0 = 10, A1 = 11, A6 = 16, A7 = 17, S2 = 18, T3 = 28, T4 = 29, T5 = 30, T6 = 31;


class Asm {
  readonly words: number[] = [];
  private readonly labels = new Map<string, number>();
  private readonly fixups: { at: number; label: string; kind: "b" | "j"; rs1: number; rs2: number; f3: number }[] = [];
  label(name: string): void { this.labels.set(name, this.words.length); }
  emit(...ws: number[]): void { this.words.push(...ws); }
  addi(rd: number, rs: number, imm: number): void { this.emit(iType(imm, rs, 0, rd, 0x13)); }
  li(rd: number, v: number): void {
    // 32-bit signed constants: lui + addiw (or one addi when small)
    if (v >= -2048 && v < 2048) { this.addi(rd, ZERO, v); return; }
    const lo = ((v & 0xfff) << 20) >> 20;
    const hi = ((v - lo) >>> 12) & 0xfffff;
    this.emit(uType(hi, rd, 0x37), iType(lo, rd, 0, rd, 0x1b));
  }
  csrr(rd: number, csr: number): void { this.emit(iType(csr, 0, 2, rd, 0x73)); }
  csrw(csr: number, rs: number): void { this.emit(iType(csr, rs, 1, 0, 0x73)); }
  /** rd = address of `label` (auipc + addi; fixed up at the end) */
  la(rd: number, label: string): void {
    this.fixups.push({ at: this.words.length, label, kind: "j", rs1: rd, rs2: -1, f3: -1 });
    this.emit(0, 0);
  }
  branch(f3: number, rs1: number, rs2: number, label: string): void {
    this.fixups.push({ at: this.words.length, label, kind: "b", rs1, rs2, f3 });
    this.emit(0);
  }
  j(label: string): void { this.fixups.push({ at: this.words.length, label, kind: "j", rs1: -1, rs2: -1, f3: -1 }); this.emit(0); }
  finish(): number[] {
    for (const f of this.fixups) {
      const target = this.labels.get(f.label);
      if (target === undefined) throw new Error(`no label ${f.label}`);
      const off = (target - f.at) * 4;
      if (f.kind === "b") this.words[f.at] = bType(off, f.rs2, f.rs1, f.f3);
      else if (f.rs1 >= 0) {
        const lo = ((off & 0xfff) << 20) >> 20;
        this.words[f.at] = uType(((off - lo) >>> 12) & 0xfffff, f.rs1, 0x17); // auipc
        this.words[f.at + 1] = iType(lo, f.rs1, 0, f.rs1, 0x13);
      } else this.words[f.at] = jType(off, 0);
    }
    return this.words;
  }
}

const SRST_EID = 0x53525354;

/** SBI system reset (SRST): power off, reason 0 (none) or 1 (failure); then spin should it return. */
function powerOff(a: Asm, reason: number, spin: string): void {
  a.li(A7, SRST_EID);
  a.li(A6, 0);
  a.li(A0, 0);
  a.li(A1, reason);
  a.emit(0x00000073); // ecall
  a.label(spin);
  a.j(spin);
}

/** The interpreter's code (32-bit words), entered in S-mode at its first word; the script starts at `script`. */
function interpreter(): { words: number[] } {
  const a = new Asm();
  a.la(T0, "handler");
  a.csrw(0x105, T0); // stvec
  a.li(T0, 0x220); // sie: STIE | SEIE, so WFI wakes on the timer or a device (SIE stays off: no interrupt traps)
  a.csrw(0x104, T0);
  a.la(S0, "script");
  a.li(S1, 0);
  a.li(S2, 0);
  a.label("loop");
  a.emit(iType(0, S0, 3, T0, 0x03), iType(8, S0, 3, T1, 0x03), iType(16, S0, 3, T2, 0x03), iType(24, S0, 3, T3, 0x03));
  a.addi(S0, S0, ACTION_BYTES);
  a.branch(0, T0, ZERO, "end");
  const ops: [number, string][] = [[OP.Store1, "s1"], [OP.Store2, "s2"], [OP.Store4, "s4"], [OP.Store8, "s8"],
    [OP.Load1, "l1"], [OP.Load2, "l2"], [OP.Load4, "l4"], [OP.Load8, "l8"], [OP.Wait, "wait"], [OP.Echo, "echo"]];
  for (const [op, label] of ops) { a.li(T4, op); a.branch(0, T0, T4, label); }
  a.j("loop"); // an unknown op (the script was overwritten): skip it
  [0, 1, 2, 3].forEach((f3, i) => { a.label(`s${1 << i}`); a.emit(sType(0, T2, T1, f3, 0x23)); a.j("loop"); });
  [4, 5, 6, 3].forEach((f3, i) => {
    a.label(`l${1 << i}`);
    a.emit(iType(0, T1, f3, T5, 0x03)); // lbu/lhu/lwu/ld t5, 0(t1)
    a.emit(rType(0, T5, S1, 4, S1, 0x33)); // xor s1, s1, t5: keep the value live
    a.j("loop");
  });
  a.label("wait");
  a.csrr(T5, 0xc01); // rdtime
  a.emit(rType(0, T2, T5, 0, A0, 0x33)); // a0 = time + value
  a.li(A7, 0); // legacy set_timer
  a.emit(0x00000073);
  a.emit(0x10500073); // wfi: ends on the timer at the latest
  a.li(A0, -1);
  a.li(A7, 0);
  a.emit(0x00000073); // timer off again (clears STIP)
  a.j("loop");
  a.label("echo");
  a.emit(iType(0, T1, 6, T5, 0x03)); // lwu t5, 0(t1)
  a.emit(rType(0, T3, T1, 0, T6, 0x33)); // t6 = t1 + t3
  a.emit(sType(0, T5, T6, 2, 0x23)); // sw t5, 0(t6)
  a.j("loop");
  a.label("end");
  powerOff(a, 0, "end_spin");
  // the trap handler: count, give up past the limit, else skip the (32-bit) faulting instruction
  a.label("handler");
  a.addi(S2, S2, 1);
  a.li(T6, TRAP_LIMIT);
  a.branch(6, S2, T6, "skip"); // bltu s2, t6
  powerOff(a, 1, "handler_spin");
  a.label("skip");
  a.csrr(T6, 0x141); // sepc
  a.addi(T6, T6, 4);
  a.csrw(0x141, T6);
  a.emit(0x10200073); // sret
  // the script follows, 64-byte aligned
  while ((a.words.length * 4 + HEADER_BYTES) % 64) a.emit(0x00000013);
  a.label("script");
  return { words: a.finish() };
}

/** Address of the script in guest RAM (it follows the interpreter in the Image). */
export const SCRIPT_ADDR = IMAGE_ADDR + BigInt(HEADER_BYTES + interpreter().words.length * 4);

export type Action = [op: number, addr: bigint, value: bigint, arg: bigint];

/** The Image: a RISC-V Linux Image header, the interpreter, the script. */
export function virtioImage(actions: Action[]): Uint8Array {
  const code = interpreter().words;
  const bytes = new Uint8Array(HEADER_BYTES + code.length * 4 + (actions.length + 1) * ACTION_BYTES);
  const dv = new DataView(bytes.buffer);
  dv.setUint32(0, 0x0400006f, true); // j +64: over the header
  dv.setBigUint64(8, IMAGE_ADDR - RAM_BASE, true); // text_offset
  dv.setBigUint64(16, BigInt(bytes.length), true); // image_size
  bytes.set(new TextEncoder().encode("RISCV"), 48);
  dv.setUint32(56, 0x05435352, true);
  code.forEach((w, i) => dv.setUint32(HEADER_BYTES + 4 * i, w, true));
  let at = HEADER_BYTES + code.length * 4;
  for (const [op, addr, value, arg] of [...actions, [OP.End, 0n, 0n, 0n] as Action]) {
    dv.setBigUint64(at, BigInt(op), true);
    dv.setBigUint64(at + 8, BigInt.asUintN(64, addr), true);
    dv.setBigUint64(at + 16, BigInt.asUintN(64, value), true);
    dv.setBigUint64(at + 24, BigInt.asUintN(64, arg), true);
    at += ACTION_BYTES;
  }
  return bytes;
}

// ---- the script generator ----

/** What the generator knows of the board (machine.ts, description.ts): one device per slot, in this order. */
export type DeviceKind = "blk" | "net" | "rng" | "balloon" | "console";
export const FUZZ_DEVICES: DeviceKind[] = ["blk", "net", "rng", "balloon", "console"];
export const VIRTIO_MMIO_BASE = 0x1000_1000n;
export const VIRTIO_MMIO_STRIDE = 0x1000n;
export const PLIC_ADDR = 0x0c00_0000n;
export const FUZZ_RAM_MIB = 24;
export const FUZZ_DISK_BYTES = 64 * 1024;
const RAM_END = RAM_BASE + BigInt(FUZZ_RAM_MIB << 20);
/** Each device's rings and buffers: 1 MiB from here per slot. */
const AREA_BASE = RAM_BASE + 0x80_0000n;
/** Pages the balloon is offered (inside RAM, away from everything else). */
const BALLOON_PAGES = RAM_BASE + 0xd0_0000n;
/** Left alone by the script: where the host's sane driver works after the run. */
export const CHECK_AREA = RAM_BASE + 0x100_0000n;

const QUEUES: Record<DeviceKind, number> = { blk: 1, net: 2, rng: 1, balloon: 3, console: 4 };
/** The device-type features a sane driver accepts (it always adds VERSION_1; INDIRECT_DESC is bit 28). */
const GOOD_FEATURES: Record<DeviceKind, number> = { blk: (1 << 9) | (1 << 2), net: (1 << 5) | (1 << 16) | (1 << 3), rng: 0, balloon: 0b110, console: 1 << 1 };
/** Where in a device's area its indirect tables go: past its rings (queue q's at q * 0x1_0000, up to four) and
 *  its buffers (0x4_0000 to 0x9_0000). */
const TABLES = 0xa_0000n;

// virtio-console's control messages (struct virtio_console_control: id u32, event u16, value u16)
const CTRL = { DEVICE_READY: 0, PORT_ADD: 1, PORT_REMOVE: 2, PORT_READY: 3, CONSOLE_PORT: 4, RESIZE: 5, PORT_OPEN: 6, PORT_NAME: 7 } as const;
/** The console's queues: port receive, port transmit, control receive, control transmit. */
const CON_RX = 0, CON_TX = 1, CON_CRX = 2, CON_CTX = 3;
/** What one request on the console's control transmit queue says (all its messages, so floods are floods). */
type ConsoleTheme = "handshake" | "device-ready" | "open-toggle" | "bad-port" | "bad-value" | "unknown" | "short" | "long" | "mixed";

interface QueueGen { num: number; desc: bigint; avail: bigint; used: bigint; idx: number; nextDesc: number }
interface DeviceGen { kind: DeviceKind; base: bigint; area: bigint; queues: QueueGen[] }

export interface VirtioScriptOptions {
  /** actions before the End (default 300); the script stops at the first episode that passes it */
  actions?: number;
}

export interface VirtioScript {
  actions: Action[];
  image: Uint8Array;
}

/** Builds the script of one round. */
export function virtioScript(seed: number, opts: VirtioScriptOptions = {}): VirtioScript {
  const g = new Gen(new Rng(seed));
  g.run(opts.actions ?? 300);
  return { actions: g.out, image: virtioImage(g.out) };
}

const M32 = 0xffff_ffffn;

class Gen {
  readonly out: Action[] = [];
  private readonly devs: DeviceGen[];
  /** what the console's control messages of the current request say */
  private theme: ConsoleTheme = "mixed";
  constructor(private readonly rng: Rng) {
    this.devs = FUZZ_DEVICES.map((kind, slot) => {
      const area = AREA_BASE + BigInt(slot) * 0x10_0000n;
      const queues = Array.from({ length: QUEUES[kind] }, (_, q) => ({
        num: 0, desc: area + BigInt(q) * 0x1_0000n, avail: area + BigInt(q) * 0x1_0000n + 0x1000n,
        used: area + BigInt(q) * 0x1_0000n + 0x2000n, idx: 0, nextDesc: 0,
      }));
      return { kind, base: VIRTIO_MMIO_BASE + VIRTIO_MMIO_STRIDE * BigInt(slot), area, queues };
    });
  }

  // primitives
  private st(size: 1 | 2 | 4 | 8, addr: bigint, value: bigint | number): void {
    const op = size === 1 ? OP.Store1 : size === 2 ? OP.Store2 : size === 4 ? OP.Store4 : OP.Store8;
    this.out.push([op, addr, BigInt(value), 0n]);
  }
  private ld(size: 1 | 2 | 4 | 8, addr: bigint): void {
    const op = size === 1 ? OP.Load1 : size === 2 ? OP.Load2 : size === 4 ? OP.Load4 : OP.Load8;
    this.out.push([op, addr, 0n, 0n]);
  }
  private reg(d: DeviceGen, off: number, v: bigint | number): void { this.st(4, d.base + BigInt(off), v); }
  private wait(ticks: number): void { this.out.push([OP.Wait, 0n, BigInt(ticks), 0n]); }
  private echo(addr: bigint, delta: number): void { this.out.push([OP.Echo, addr, 0n, BigInt(delta)]); }
  private chance(p: number): boolean { return this.rng.next() / 0x1_0000_0000 < p; }
  private u32(): bigint { return BigInt(this.rng.next()); }
  private u64(): bigint { return (this.u32() << 32n) | this.u32(); }

  /** An address somewhere it should not be: beyond RAM, in device memory, straddling RAM's end, wrapping past
   *  2^64, unaligned, on the program itself, on the device's own registers. */
  private badAddr(d: DeviceGen, size = 16): bigint {
    size = Math.max(1, Math.min(size, 0x1000));
    switch (this.rng.below(9)) {
      case 0: return RAM_END;
      case 1: return RAM_END - BigInt(this.rng.below(size) + 1);
      case 2: return (1n << 64n) - BigInt(this.rng.below(64) + 1);
      case 3: return d.base; // MMIO: the device's own registers
      case 4: return 0n;
      case 5:
        // the program itself: mostly the part of the script already run (so the round goes on), now and then the
        // interpreter (the device's writes then wreck it, and the round ends by the trap limit or the timeout)
        if (this.rng.below(8) === 0) return IMAGE_ADDR + BigInt(this.rng.below(0x200));
        return SCRIPT_ADDR + BigInt(ACTION_BYTES * this.rng.below(Math.max(1, this.out.length - 8)));
      case 6: return d.area + BigInt(this.rng.below(0x3000)) | 1n; // odd, over the rings
      case 7: return this.chance(0.5) ? this.u64() : this.rng.pick(this.devs).area + BigInt(this.rng.below(0x3000)); // random, or another device's rings
      default: return RAM_BASE - BigInt(this.rng.below(size) + 1); // straddles RAM's start
    }
  }

  run(target: number): void {
    // PLIC: every virtio source at priority 1, enabled for the S-mode context, threshold 0
    for (let s = 1; s <= FUZZ_DEVICES.length; s++) this.st(4, PLIC_ADDR + BigInt(4 * s), 1);
    this.st(4, PLIC_ADDR + 0x2080n, ((1 << (FUZZ_DEVICES.length + 1)) - 2) >>> 0); // sources 1..N
    this.st(4, PLIC_ADDR + 0x20_1000n, 0);
    // most rounds start with every device set up properly, so requests get deep
    for (const d of this.devs) if (this.chance(0.8)) this.init(d, false);
    while (this.out.length < target) {
      const d = this.rng.pick(this.devs);
      const k = this.rng.below(100);
      if (k < 50) this.request(d);
      else if (k < 60) this.init(d, true);
      else if (k < 64) this.storm(d);
      else if (k < 68) this.statusSequence(d);
      else if (k < 74) this.config(d);
      else if (k < 84) this.interrupts(d);
      else if (k < 87) this.reset(d);
      else if (k < 90) this.reenable(d);
      else this.wait(this.rng.below(2000));
    }
  }

  /** Reset and set the device up: features, queues, DRIVER_OK. With `hostile`, one or two steps go wrong. */
  private init(d: DeviceGen, hostile: boolean): void {
    const twist = hostile ? this.rng.below(14) : -1;
    this.reg(d, REG.Status, 0);
    for (const q of d.queues) { q.idx = 0; q.nextDesc = 0; q.num = 0; }
    this.ld(4, d.base + BigInt(REG.MagicValue));
    this.ld(4, d.base + BigInt(REG.DeviceID));
    this.reg(d, REG.Status, STATUS_ACKNOWLEDGE);
    this.reg(d, REG.Status, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    this.reg(d, REG.DeviceFeaturesSel, 0);
    this.ld(4, d.base + BigInt(REG.DeviceFeatures));
    let lo = BigInt(GOOD_FEATURES[d.kind]) | (this.chance(0.5) ? 1n << 28n : 0n), hi = 1n;
    if (twist === 0) hi = 0n; // no VERSION_1: FEATURES_OK does not stick
    if (twist === 1) lo |= 1n << BigInt(this.rng.below(32)); // maybe one the device does not offer
    if (twist === 2) hi = this.u32();
    this.reg(d, REG.DriverFeaturesSel, 0);
    this.reg(d, REG.DriverFeatures, lo);
    this.reg(d, REG.DriverFeaturesSel, twist === 3 ? 2 + this.rng.below(1000) : 1);
    this.reg(d, REG.DriverFeatures, hi);
    const ok = STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK;
    if (twist !== 4) this.reg(d, REG.Status, ok);
    this.ld(4, d.base + BigInt(REG.Status));
    d.queues.forEach((q, i) => {
      // mostly 4..16: room for a chain; now and then the largest ring the transport offers (256)
      const num = this.chance(0.85) ? 4 << this.rng.below(3) : this.chance(0.5) ? 256 : 1 << this.rng.below(2);
      this.reg(d, REG.QueueSel, twist === 5 && this.chance(0.5) ? this.pickBadQueue(d) : i);
      this.ld(4, d.base + BigInt(REG.QueueNumMax));
      let n = BigInt(num);
      if (twist === 6 && this.chance(0.5)) n = this.rng.pick([0n, 3n, 512n, 0x1_0000n, M32, BigInt(num + 1)]);
      this.reg(d, REG.QueueNum, n);
      q.num = num;
      // rings zeroed: avail flags/idx, used flags/idx
      this.st(4, q.avail, 0);
      this.st(4, q.used, 0);
      const addrs = [q.desc, q.avail, q.used];
      if (twist === 7 && this.chance(0.6)) addrs[this.rng.below(3)] = this.badAddr(d, 16 * num);
      if (twist === 8 && this.chance(0.6)) addrs[this.rng.below(3)] = this.rng.pick([SCRIPT_ADDR, addrs[0], addrs[1] + 1n, addrs[2] - 4n]); // overlaps
      [REG.QueueDescLow, REG.QueueDriverLow, REG.QueueDeviceLow].forEach((r, k) => {
        this.reg(d, r, addrs[k] & M32);
        this.reg(d, r + 4, addrs[k] >> 32n);
      });
      if (twist !== 9 || this.chance(0.5)) this.reg(d, REG.QueueReady, 1);
      if (twist === 10 && this.chance(0.5)) { this.reg(d, REG.QueueReady, 0); this.reg(d, REG.QueueReady, 1); }
      if (twist === 11 && this.chance(0.5)) this.reg(d, REG.QueueDescLow, this.u32()); // ignored once ready
    });
    if (d.kind === "net") this.rxBuffers(d);
    if (d.kind === "console") this.consoleBuffers(d);
    if (twist === 12) this.reg(d, REG.Status, this.rng.pick([STATUS_DRIVER_OK | STATUS_ACKNOWLEDGE, 0xff, STATUS_FAILED | ok, STATUS_NEEDS_RESET | ok | STATUS_DRIVER_OK]));
    else if (twist !== 13) this.reg(d, REG.Status, ok | STATUS_DRIVER_OK);
    this.ld(4, d.base + BigInt(REG.Status));
    if (d.kind === "balloon" && this.chance(0.5)) this.publish(d, 2, [{ addr: d.area + 0x8_0000n, len: 10 * (1 + this.rng.below(12)), write: false }]);
    // most set-ups of the console go on with Linux's handshake, so that its port opens and data flows
    if (d.kind === "console" && this.chance(0.7)) this.consoleHandshake(d);
  }

  /** The console's receive buffers, as Linux gives them before DRIVER_OK: control ones (pages), port ones. */
  private consoleBuffers(d: DeviceGen): void {
    const n = 1 + this.rng.below(3);
    for (let i = 0; i < n; i++) this.publish(d, CON_CRX, [{ addr: d.area + 0x4_0000n + BigInt(i) * 0x1000n, len: 4096, write: true }]);
    const m = this.rng.below(3);
    for (let i = 0; i < m; i++) this.publish(d, CON_RX, [{ addr: d.area + 0x4_8000n + BigInt(i) * 0x1000n, len: 4096, write: true }]);
  }

  /** DEVICE_READY(1), PORT_READY(0, 1), PORT_OPEN(0, 1): each its own notify (Linux answers in between). */
  private consoleHandshake(d: DeviceGen): void {
    const steps: [number, number, number][] = [[0, CTRL.DEVICE_READY, 1], [0, CTRL.PORT_READY, 1], [0, CTRL.PORT_OPEN, 1]];
    // now and then a step is left out or comes twice
    const skip = this.chance(0.1) ? this.rng.below(3) : -1;
    const twice = this.chance(0.1) ? this.rng.below(3) : -1;
    steps.forEach(([id, event, value], k) => {
      if (k === skip) return;
      for (let r = k === twice ? 2 : 1; r > 0; r--) {
        const at = d.area + 0x4_c000n + BigInt(k) * 0x40n;
        this.ctrlMessage(at, id, event, value);
        this.publish(d, CON_CTX, [{ addr: at, len: 8, write: false }]);
        this.reg(d, REG.QueueNotify, CON_CTX);
        // more control receive buffers for the answers (PORT_ADD; PORT_NAME and PORT_OPEN)
        if (this.chance(0.6)) {
          this.publish(d, CON_CRX, [{ addr: d.area + 0x4_4000n + BigInt(k) * 0x1000n, len: 4096, write: true }]);
          this.reg(d, REG.QueueNotify, CON_CRX);
        }
      }
    });
  }

  /** DEVICE_READY over and over, a ring's worth per notify, several times: more answers (PORT_ADD) than the device
   *  holds for a driver that gives too few control receive buffers to take them. */
  private consoleFlood(d: DeviceGen): void {
    const q = d.queues[CON_CTX];
    const at = d.area + 0x4_c100n;
    this.ctrlMessage(at, 0, CTRL.DEVICE_READY, 1);
    for (let batches = 2 + this.rng.below(4); batches > 0; batches--) {
      // (a large ring's worth would take the whole script: 40 go past the 16 answers the device holds)
      for (let i = 0; i < Math.min(q.num || 1, 40); i++) this.publish(d, CON_CTX, [{ addr: at, len: 8, write: false }]);
      this.reg(d, REG.QueueNotify, CON_CTX);
    }
    if (this.chance(0.5)) this.interrupts(d);
  }

  private ctrlMessage(at: bigint, id: number | bigint, event: number, value: number): void {
    this.st(4, at, BigInt(id));
    this.st(4, at + 4n, BigInt(event & 0xffff) | (BigInt(value & 0xffff) << 16n));
  }

  private pickBadQueue(d: DeviceGen): number { return this.rng.pick([d.queues.length, 7, 0xffff, 0xffffffff]); }

  private rxBuffers(d: DeviceGen): void {
    const n = 1 + this.rng.below(3);
    for (let i = 0; i < n; i++) this.publish(d, 0, [{ addr: d.area + 0x4_0000n + BigInt(i) * 0x800n, len: 1526, write: true }]);
  }

  /** One request on one queue, nearly valid; sometimes several; then notify and maybe wait and acknowledge. */
  private request(d: DeviceGen): void {
    const qi = this.rng.below(d.queues.length);
    const q = d.queues[qi];
    // a device that may have failed, or was never set up, is set up again first now and then (the script cannot
    // read Status back and decide, so it does so blindly): requests must reach a running device to get deep
    if (q.num === 0 || this.chance(0.2)) { this.init(d, false); }
    // one request, or several (as many as the ring holds; now and then more, which the device must refuse)
    const count = this.chance(0.7) ? 1 : this.chance(0.9) ? 1 + this.rng.below(q.num) : q.num + 1 + this.rng.below(q.num);
    // chains share the descriptor table: past what it holds, a later chain overwrites an earlier one's descriptors
    // (a driver bug the device must survive, but one that makes requests shallow: rare)
    let room = q.num;
    if (d.kind === "console") {
      this.theme = this.rng.pick(["handshake", "device-ready", "open-toggle", "bad-port", "bad-value", "unknown", "short", "long", "mixed", "mixed"] as const);
      if (qi === CON_CTX && this.theme === "device-ready" && this.chance(0.5)) { this.consoleFlood(d); return; }
    }
    for (let i = 0; i < count; i++) {
      const bufs = this.chainFor(d, qi, i);
      if (bufs.length > room && i > 0 && this.chance(0.9)) break;
      room -= bufs.length;
      this.publish(d, qi, bufs, this.chance(0.25));
    }
    if (this.chance(0.05)) this.reg(d, REG.Status, 0); // reset before the notify
    this.reg(d, REG.QueueNotify, this.chance(0.05) ? this.rng.pick([d.queues.length, 0xffff, this.rng.next()]) : qi);
    if (this.chance(0.08)) { this.reg(d, REG.Status, 0); for (const x of d.queues) { x.idx = 0; x.nextDesc = 0; x.num = 0; } }
    if (this.chance(0.5)) {
      this.ld(2, q.used + 2n);
      this.ld(4, q.used + 4n);
    }
    if (this.chance(0.3)) this.interrupts(d);
  }

  /** The buffers of a well-formed request for this queue (sizes, contents and places a driver would use). */
  private chainFor(d: DeviceGen, qi: number, i: number): Buf[] {
    const buf = d.area + 0x4_0000n + BigInt(this.rng.below(64)) * 0x1000n;
    const rng = this.rng;
    switch (d.kind) {
      case "blk": {
        const type = rng.pick([0, 0, 0, 1, 1, 1, 4, 8, rng.next()]);
        const sectors = FUZZ_DISK_BYTES / 512;
        const sector = this.chance(0.8) ? BigInt(rng.below(sectors)) : rng.pick([BigInt(sectors - 1), BigInt(sectors), M32 + 1n, (1n << 64n) - 1n, (1n << 55n)]);
        this.st(4, buf, type);
        this.st(4, buf + 4n, 0);
        this.st(8, buf + 8n, sector);
        const n = rng.pick([0, 1, 1, 1, 2, 8, 3]) * 512 + (this.chance(0.03) ? 1 : 0);
        const write = type !== 1;
        const data: Buf[] = [];
        if (n > 0) {
          if (this.chance(0.3) && n >= 1024) data.push({ addr: buf + 0x100n, len: 512, write }, { addr: buf + 0x2000n, len: n - 512, write });
          else data.push({ addr: buf + 0x100n, len: n, write });
          if (type === 1) for (let k = 0; k < 4; k++) this.st(8, buf + 0x100n + BigInt(8 * k), this.u64());
        }
        return [{ addr: buf, len: 16, write: false }, ...data, { addr: buf + 0x3000n + BigInt(i), len: 1, write: true }];
      }
      case "net":
        if (qi === 0) return this.chance(0.5) ? [{ addr: buf, len: 1526, write: true }] : [{ addr: buf, len: 12, write: true }, { addr: buf + 0x100n, len: 1514, write: true }];
        {
          const len = this.chance(0.8) ? rng.pick([60, 64, 590, 1514, 1518]) : rng.pick([13, 1519, 0, 9000]);
          for (let k = 0; k < 3; k++) this.st(8, buf + 12n + BigInt(8 * k), this.u64());
          return this.chance(0.5) ? [{ addr: buf, len: 12 + len, write: false }] : [{ addr: buf, len: 12, write: false }, { addr: buf + 12n, len, write: false }];
        }
      case "rng":
        return [{ addr: buf, len: rng.pick([1, 16, 64, 4096, 65536, 70000]), write: true }];
      case "balloon": {
        if (qi === 2) return [{ addr: buf, len: 10 * (1 + rng.below(40)), write: false }];
        const n = 1 + rng.below(8);
        for (let k = 0; k < n; k++) {
          // mostly pages set aside for it; now and then none of RAM's, or a page in use: the script already run, or
          // a device's rings and buffers (zeroed under its feet)
          const pfn = this.chance(0.9) ? (BALLOON_PAGES >> 12n) + BigInt(rng.below(64))
            : rng.pick([0n, M32, (RAM_END >> 12n), (SCRIPT_ADDR >> 12n) + 1n, (rng.pick(this.devs).area >> 12n) + BigInt(rng.below(0x50))]);
          this.st(4, buf + BigInt(4 * k), pfn);
        }
        return [{ addr: buf, len: 4 * n + (this.chance(0.1) ? rng.below(4) : 0), write: false }];
      }
      case "console": return this.consoleChain(d, qi, i, buf);
    }
  }

  /** A chain for one of the console's queues: a control message, a receive buffer, data for the host. */
  private consoleChain(d: DeviceGen, qi: number, i: number, buf: bigint): Buf[] {
    const rng = this.rng;
    if (qi === CON_CTX) {
      // each message of a request has its own place (chains published together do not share one)
      const at = buf + BigInt(i % 8) * 0x200n;
      let theme = this.theme;
      if (theme === "mixed") theme = rng.pick(["handshake", "device-ready", "open-toggle", "bad-port", "bad-value", "unknown", "short", "long"] as const);
      let id: number | bigint = 0, event: number = CTRL.DEVICE_READY, value = 1, len = 8;
      switch (theme) {
        case "handshake": [event, value] = rng.pick([[CTRL.DEVICE_READY, 1], [CTRL.PORT_READY, 1], [CTRL.PORT_OPEN, 1], [CTRL.PORT_OPEN, 0]] as const); break;
        case "device-ready": break; // a flood when several go together
        case "open-toggle": event = CTRL.PORT_OPEN; value = i & 1 ? 0 : 1; break;
        case "bad-port": id = rng.pick([1, 2, 31, 0x8000_0000, 0xffff_ffff]); event = rng.pick([CTRL.PORT_READY, CTRL.PORT_OPEN, CTRL.PORT_REMOVE, CTRL.RESIZE]); break;
        case "bad-value": event = rng.pick([CTRL.DEVICE_READY, CTRL.PORT_READY, CTRL.PORT_OPEN]); value = rng.pick([0, 2, 0x100, 0xffff]); break;
        case "unknown": event = rng.pick([CTRL.PORT_ADD, CTRL.PORT_REMOVE, CTRL.CONSOLE_PORT, CTRL.RESIZE, CTRL.PORT_NAME, 8, 0x7fff, 0xffff, rng.below(0x10000)]); value = rng.below(3); break;
        case "short": len = rng.below(8); event = rng.pick([CTRL.DEVICE_READY, CTRL.PORT_OPEN]); break;
        case "long": len = 8 + rng.pick([1, 20, 248, 4096, 70000]); event = rng.pick([CTRL.DEVICE_READY, CTRL.PORT_READY, CTRL.PORT_OPEN, CTRL.PORT_NAME]); break;
      }
      this.ctrlMessage(at, id, event, value);
      // a message split over two descriptors now and then (the device reads the chain, not a descriptor)
      if (len >= 8 && this.chance(0.15)) return [{ addr: at, len: 3, write: false }, { addr: at + 3n, len: len - 3, write: false }];
      return [{ addr: at, len, write: false }];
    }
    if (qi === CON_CRX) {
      // a page, as Linux gives; or too small for PORT_NAME with the name (8 + 20 bytes), or for any message; or a
      // readable part first (the device must write only the writable one), or writable before readable (not allowed)
      const len = this.chance(0.6) ? rng.pick([4096, 256, 28, 64]) : rng.pick([0, 1, 7, 8, 9, 27]);
      const k = rng.below(10);
      if (k === 0) return [{ addr: buf, len: 16, write: false }, { addr: buf + 0x100n, len, write: true }];
      if (k === 1) return [{ addr: buf, len, write: true }, { addr: buf + 0x100n, len: 16, write: false }];
      if (k === 2) return [{ addr: buf, len: 4, write: true }, { addr: buf + 0x100n, len, write: true }];
      return [{ addr: buf, len, write: true }];
    }
    if (qi === CON_RX) {
      const len = rng.pick([1, 16, 512, 4096, 4096, 65536, 0]);
      const k = rng.below(10);
      if (k === 0) return [{ addr: buf, len: 64, write: false }, { addr: buf + 0x100n, len, write: true }];
      if (k === 1) return [{ addr: buf, len, write: true }, { addr: buf + 0x100n, len: 64, write: false }];
      if (k === 2) return [{ addr: buf, len: 16, write: false }]; // nothing writable at all
      return this.chance(0.3) ? [{ addr: buf, len: 7, write: true }, { addr: buf + 0x100n, len, write: true }] : [{ addr: buf, len, write: true }];
    }
    // data for the host, of every size: mostly what Linux writes (up to 32 KiB), now and then far more, up to
    // descriptors over most of RAM
    for (let k = 0; k < 2; k++) this.st(8, buf + BigInt(8 * k), this.u64());
    const len = this.chance(0.8) ? rng.pick([1, 2, 7, 16, 100, 4096, 32768]) : rng.pick([0, 65536, 65537, (1 << 20), (1 << 20) + 1, 1 << 22]);
    if (this.chance(0.05)) {
      // descriptors each over 16 MiB of RAM: hundreds of MiB in one chain, a GiB in an indirect table of 64 (the
      // most one table place holds)
      const n = this.chance(0.8) ? 2 + rng.below(7) : 64;
      return Array.from({ length: n }, () => ({ addr: RAM_BASE, len: 16 << 20, write: false }));
    }
    if (this.chance(0.2) && len >= 2) return [{ addr: buf, len: 1, write: false }, { addr: buf + 1n, len: len - 1, write: false }];
    if (this.chance(0.05)) return [{ addr: buf, len, write: false }, { addr: buf + 0x100n, len: 64, write: true }]; // a writable part too
    return [{ addr: buf, len, write: false }];
  }

  /**
   * Writes a chain of descriptors for `bufs` and publishes its head on the avail ring (then avail.idx). With
   * `hostile`, one thing about it is wrong.
   */
  private publish(d: DeviceGen, qi: number, bufs: Buf[], hostile = false): void {
    const q = d.queues[qi];
    const num = q.num || 1;
    const rng = this.rng;
    const twist = hostile ? rng.below(18) : -1;
    const descs = bufs.map((b) => ({ ...b, flags: b.write ? VIRTQ_DESC_F_WRITE : 0, next: 0, len32: BigInt(b.len) }));
    const pick = () => descs[rng.below(descs.length)];
    if (twist === 0) { const x = pick(); x.addr = this.badAddr(d, x.len); }
    if (twist === 1) pick().len32 = rng.pick([M32, 0x8000_0000n, 0n, 0x1_0000n]);
    if (twist === 2) { const x = pick(); x.flags ^= VIRTQ_DESC_F_WRITE; }
    if (twist === 3) pick().addr = rng.pick([q.desc, q.used, q.avail]); // the device writes its own rings
    if (twist === 4) pick().addr = SCRIPT_ADDR + BigInt(ACTION_BYTES * rng.below(Math.max(1, this.out.length - 8))); // on the script already run
    if (twist === 5) { const x = pick(); x.addr = (1n << 64n) - 8n; x.len32 = 0x100n; } // wraps past 2^64
    const useIndirect = twist >= 6 && twist <= 11 ? true : this.chance(0.15);
    if (useIndirect) {
      // the whole chain in an indirect table (one per head: chains published together keep theirs); one head
      // descriptor points at it
      const head = q.nextDesc % num;
      const table = d.area + TABLES + BigInt(qi) * 0x4000n + BigInt(head % 16) * 0x400n;
      const n = descs.length;
      descs.forEach((x, k) => {
        let flags = x.flags | (k + 1 < n ? VIRTQ_DESC_F_NEXT : 0);
        let next = k + 1 < n ? k + 1 : 0;
        if (twist === 6 && k === n - 1) { flags |= VIRTQ_DESC_F_NEXT; next = 0; } // a loop inside the table
        if (twist === 7 && k === 0) flags |= VIRTQ_DESC_F_INDIRECT; // indirect inside indirect
        if (twist === 8 && k + 1 < n) next = n + rng.below(100);
        this.desc(table + BigInt(16 * k), x.addr, x.len32, flags, next);
      });
      let len = BigInt(16 * n);
      if (twist === 9) len = rng.pick([0n, len + 1n, 16n * 2000n, M32]);
      this.desc(q.desc + BigInt(16 * head), twist === 10 ? this.badAddr(d, Number(len)) : table, len,
        VIRTQ_DESC_F_INDIRECT | (twist === 11 ? VIRTQ_DESC_F_NEXT : 0), (head + 1) % num);
      q.nextDesc = (head + 1) % num;
      this.avail(q, head, twist);
      return;
    }
    const head = q.nextDesc % num;
    let idx = head;
    descs.forEach((x, k) => {
      const last = k + 1 === descs.length;
      let next = (idx + 1) % num;
      let flags = x.flags | (last ? 0 : VIRTQ_DESC_F_NEXT);
      if (twist === 12 && last) { flags |= VIRTQ_DESC_F_NEXT; next = head; } // back to the head: a loop
      if (twist === 13 && !last) next = num + rng.below(1000);
      this.desc(q.desc + BigInt(16 * idx), x.addr, x.len32, flags, next);
      idx = next % num;
    });
    q.nextDesc = idx;
    this.avail(q, head, twist);
  }

  private desc(at: bigint, addr: bigint, len: bigint, flags: number, next: number): void {
    this.st(8, at, addr);
    this.st(4, at + 8n, len);
    this.st(4, at + 12n, BigInt(flags & 0xffff) | (BigInt(next & 0xffff) << 16n));
  }

  private avail(q: QueueGen, head: number, twist: number): void {
    const num = q.num || 1;
    const rng = this.rng;
    this.st(2, q.avail + 4n + BigInt(2 * (q.idx % num)), twist === 14 ? num + rng.below(0x10000 - num) : head);
    if (twist === 15) this.st(2, q.avail, 1); // NO_INTERRUPT
    let idx = (q.idx + 1) & 0xffff;
    if (twist === 16) idx = (q.idx + rng.pick([num + 1, 0x8000, 0xffff, num])) & 0xffff; // avail.idx jumps
    if (twist === 17) idx = q.idx; // published but not counted
    q.idx = idx;
    this.st(2, q.avail + 2n, idx);
  }

  /** Random register traffic: meaningful offsets with random values, random offsets, widths 1/2/4/8. */
  private storm(d: DeviceGen): void {
    const n = 1 + this.rng.below(12);
    const regs = Object.values(REG) as number[];
    for (let i = 0; i < n; i++) {
      const off = this.chance(0.7) ? this.rng.pick(regs) : this.rng.below(0x1000);
      const size = this.rng.pick([4, 4, 4, 1, 2, 8] as const);
      const addr = d.base + BigInt(off + (this.chance(0.1) ? this.rng.below(4) : 0));
      if (this.chance(0.4)) this.ld(size, addr);
      else this.st(size, addr, this.chance(0.5) ? BigInt(this.rng.below(16)) : this.u64());
    }
  }

  /** Status writes a driver must not make: bits cleared without a reset, bits out of order, FAILED, reserved. */
  private statusSequence(d: DeviceGen): void {
    const bits = [STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_FEATURES_OK, STATUS_DRIVER_OK, STATUS_FAILED, STATUS_NEEDS_RESET, 0x10, 0x20];
    const n = 1 + this.rng.below(3);
    for (let i = 0; i < n; i++) {
      let v = 0;
      for (const b of bits) if (this.chance(b === STATUS_FAILED || b >= 0x10 && b !== STATUS_DRIVER_OK && b !== STATUS_FEATURES_OK ? 0.1 : 0.6)) v |= b;
      this.reg(d, REG.Status, this.chance(0.05) ? this.u32() : v);
      if (this.chance(0.5)) this.ld(4, d.base + BigInt(REG.Status));
    }
  }

  /** Config space: reads and writes at every offset of a window, at one width. */
  private config(d: DeviceGen): void {
    const size = this.rng.pick([1, 2, 4, 8] as const);
    const from = this.rng.below(0x48);
    for (let off = from; off < from + 16; off += size) {
      const addr = d.base + BigInt(REG.Config + off);
      if (this.chance(0.5)) this.ld(size, addr);
      else this.st(size, addr, this.u64());
    }
  }

  /** Waits, and acknowledges: InterruptStatus to InterruptACK, PLIC claim and complete. */
  private interrupts(d: DeviceGen): void {
    if (this.chance(0.7)) this.wait(this.rng.below(500));
    this.echo(d.base + BigInt(REG.InterruptStatus), 4);
    this.echo(PLIC_ADDR + 0x20_1004n, 0);
    if (this.chance(0.1)) this.reg(d, REG.InterruptACK, this.u32());
  }

  /** Takes a queue away from a running device and gives it back, maybe with another size (QueueReady 0, 1). */
  private reenable(d: DeviceGen): void {
    const qi = this.rng.below(d.queues.length);
    const q = d.queues[qi];
    this.reg(d, REG.QueueSel, qi);
    this.reg(d, REG.QueueReady, 0);
    if (this.chance(0.3)) this.reg(d, REG.QueueNotify, qi); // notify while it is away
    const num = 1 << this.rng.below(5);
    this.reg(d, REG.QueueNum, num);
    this.st(4, q.avail, 0);
    this.st(4, q.used, 0);
    q.num = num; q.idx = 0; q.nextDesc = 0;
    if (this.chance(0.9)) this.reg(d, REG.QueueReady, 1);
  }

  private reset(d: DeviceGen): void {
    this.reg(d, REG.Status, 0);
    for (const q of d.queues) { q.idx = 0; q.nextDesc = 0; q.num = 0; }
    if (this.chance(0.5)) this.init(d, this.chance(0.3));
  }
}

interface Buf { addr: bigint; len: number; write: boolean }
