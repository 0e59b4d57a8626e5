// The TypeScript face of one hart: instantiates hart.wasm on a shared memory, and reads and writes the hart's
// state block (hart-state.ts, generated from hart-state.mjs) directly: registers, pc and every CSR are fields at
// fixed offsets, so nothing needs a getter or setter exported from wasm.

import { computeLayout, type MemoryLayout, RAM_BASE } from "./layout.ts";
import { HART_BLOCK, HART_FIELDS, HART_LAYOUT_VERSION, HartStateView } from "./hart-state.ts";
import { SnapshotError } from "./snapshot/state-value.ts";
import { JitTier, type JitOptions, type JitHartExports } from "./jit/tier.ts";

export type { JitOptions };

export enum StopReason {
  Slice = 0,
  Wfi = 1,
  Mmio = 2,
  Htif = 3,
  Fatal = 4,
  Ecall = 5,
  /** with the JIT on: a block start became hot and waits to be compiled; Hart.run() handles it, callers never see it */
  Jit = 6,
  /** with the JIT on: FENCE.I after stores into pages of compiled code, whose regions go; handled by Hart.run() */
  FenceI = 7,
}

/** Values of the block's `mmioAnswer` field */
const MMIO_READY = 1;
const MMIO_FAULT = 2;
/** Bits of the block's `flushRequest` field */
export const FLUSH_TLB = 1;
export const FLUSH_DECODED = 2;

/** The hart module's exports (assembly/index.ts); those the JIT uses are JitHartExports (src/jit/tier.ts). */
interface HartExports extends JitHartExports {
  init(hartId: number, hartBase: number, ramOffset: number, ramBase: bigint, ramSize: bigint,
    decodeMap: number, decodeOwners: number, decodeSlots: number, decodeSlotCount: number, dirtyMap: number, codeMap: number): void;
  reset(hartId: number, pc: bigint): void;
  run(budget: number): number;
  stateRestored(): void;
  prepareSave(): void;
  setTohost(addr: bigint): void;
  flushTlb(): void;
  invalidateDecoded(): void;
  hartFieldsLayoutOk(): number;
  /** finishes what a compiled block left pending (a trap or a stop) */
  takePendingTrap(): number;
  /** drops the instructions decoded from a RAM page (counted from RAM's start) */
  dropDecoded(page: number): void;
  /** tests: enters va's translation in the read (write = 0) or write TLB; 0 when the access would fault or is not RAM */
  fillTlbForTest(va: bigint, write: number): number;
}

/** A hart's saved state: the architectural part of its block, as bytes, with the layout they follow. */
export interface HartSnapshot {
  layoutVersion: number;
  block: Uint8Array;
}

/** A RISC-V hart running in its own wasm instance over a shared memory that holds guest RAM. */
export class Hart {
  readonly memory: WebAssembly.Memory;
  readonly layout: MemoryLayout;
  readonly ex: HartExports;
  /** Guest RAM as bytes (a view of the shared memory). */
  readonly ram: Uint8Array;
  /** The hart's state block: pc, privilege, CSRs, exchange words (see hart-state.mjs). */
  readonly state: HartStateView;
  private readonly x: BigUint64Array;
  private readonly blockBytes: Uint8Array;
  /** the JIT, when it is on (enableJit) */
  jit: JitTier | undefined;
  /** the decode cache's map: for each RAM page, its slot of decoded instructions + 1, or 0 (assembly/icache.ts) */
  private decodeMap: Uint32Array;

  /** Harts created while this is set start with the JIT on with these options: for runners that make their harts
   *  themselves (bare.ts: the assembly tests, riscv-tests through `vm --elf --jit`). */
  static jitByDefault: JitOptions | undefined;

  constructor(module: WebAssembly.Module, layout: MemoryLayout, memory?: WebAssembly.Memory, readonly hartId = 0) {
    this.layout = layout;
    this.memory = memory ?? new WebAssembly.Memory({ initial: layout.pages, maximum: layout.pages, shared: true });
    const instance = new WebAssembly.Instance(module, {
      env: {
        memory: this.memory,
        abort: () => { throw new Error("hart aborted"); },
      },
    });
    this.ex = instance.exports as unknown as HartExports;
    if (!this.ex.hartFieldsLayoutOk()) throw new Error("hart.wasm lays out its state block differently from src/hart-state.ts: rebuild it (npm run build:core)");
    const base = layout.hartBase + hartId * layout.hartBlockBytes;
    this.ex.init(hartId, base, layout.ramOffset, RAM_BASE, BigInt(layout.ramBytes),
      layout.decodeMap, layout.decodeOwners, layout.decodeSlots, layout.decodeSlotCount, layout.dirtyMap, layout.codeMap);
    this.ram = new Uint8Array(this.memory.buffer, layout.ramOffset, layout.ramBytes);
    this.x = new BigUint64Array(this.memory.buffer, base + HART_BLOCK.XREGS, 32);
    this.state = new HartStateView(new DataView(this.memory.buffer, base, HART_BLOCK.SIZE));
    this.blockBytes = new Uint8Array(this.memory.buffer, base, HART_BLOCK.SAVED_BYTES);
    this.decodeMap = new Uint32Array(this.memory.buffer, layout.decodeMap, layout.ramBytes / 4096);
    if (Hart.jitByDefault) this.enableJit(Hart.jitByDefault);
  }

  /** Makes device writes to guest RAM through `memory` (DMA) drop the code this hart decoded or compiled from the
   *  pages they touch, as writePhys does: a guest need not run FENCE.I after a device wrote code (QEMU, too,
   *  drops translated code on DMA). */
  watchDeviceWrites(memory: { onCodeWrite: ((off: number, len: number) => void) | undefined }): void {
    memory.onCodeWrite = (off, len) => this.deviceWrote(off, len);
  }

  /** RAM [off, off + len) was written behind the hart's back (between run() calls): the instructions decoded from
   *  its pages (the decode cache's map: a u32 per RAM page) and the regions compiled from them go, page by page;
   *  the rest of the decoded and compiled code stays. */
  private deviceWrote(off: number, len: number): void {
    if (len <= 0) return;
    if (this.decodeMap.buffer !== this.memory.buffer) {
      this.decodeMap = new Uint32Array(this.memory.buffer, this.layout.decodeMap, this.layout.ramBytes / 4096);
    }
    const last = (off + len - 1) >>> 12;
    for (let page = off >>> 12; page <= last; page++) {
      if (this.decodeMap[page] !== 0) this.ex.dropDecoded(page);
      this.jit?.dropRamPage(page);
    }
  }

  /** Turns the JIT on (hot blocks compiled to WebAssembly and entered from run()); once on, it stays on. */
  enableJit(opts: JitOptions = {}): JitTier {
    this.jit ??= new JitTier(this.ex as unknown as JitHartExports, this.memory, this.layout.ramOffset, this.layout.ramBytes, opts);
    return this.jit;
  }

  static create(module: WebAssembly.Module, ramMiB: number): Hart {
    return new Hart(module, computeLayout(ramMiB));
  }

  get pc(): bigint { return this.state.pc; }
  set pc(v: bigint) { this.state.pc = v; }
  reg(i: number): bigint { return this.x[i]; }
  setReg(i: number, v: bigint): void { if (i !== 0) this.x[i] = BigInt.asUintN(64, v); }
  get instret(): bigint { return this.state.instret; }
  get priv(): number { return this.state.priv; }
  /** Changes privilege; translation depends on it, so the TLB keys are recomputed before the next instruction. */
  set priv(p: number) { this.state.priv = p; this.state.translationEpoch = this.state.translationEpoch + 1; }

  /** Runs up to budget steps (instructions or traps). With the JIT on, a stop for compiling a block is handled
   *  here (the block is compiled and run() goes on with what is left of the budget), so callers never see it. */
  run(budget: number): StopReason {
    if (this.jit?.waiting) this.jit.startIfDue(this.instret);
    let why = this.ex.run(budget) as StopReason;
    while (why === StopReason.Jit || why === StopReason.FenceI) {
      if (why === StopReason.Jit) budget -= this.jit!.compileRequested();
      else {
        budget -= this.ex.jitRequestSteps();
        this.jit!.dropWrittenPages();
      }
      if (budget <= 0) return StopReason.Slice;
      why = this.ex.run(budget) as StopReason;
    }
    return why;
  }

  /** FENCE.I reaching this hart from outside its instructions (an SBI remote fence.i): as the instruction does. */
  fenceI(): void {
    // (without the JIT nothing is queued: the decoded instructions of written pages went at the stores)
    this.jit?.dropWrittenPages();
  }

  /** Answers the MMIO load or store the hart stopped on; it re-executes the access and takes the answer. */
  mmioComplete(value: bigint): void { this.state.mmioData = value; this.state.mmioAnswer = MMIO_READY; }
  /** The MMIO access the hart stopped on faults (an access fault trap). */
  mmioFail(): void { this.state.mmioAnswer = MMIO_FAULT; }

  /** Asks the hart to flush (FLUSH_TLB, FLUSH_DECODED) before its next instruction; safe from any thread. */
  requestFlush(bits: number): void {
    const word = new Int32Array(this.memory.buffer, this.state.view.byteOffset + HART_FIELDS.flushRequest.offset, 1);
    Atomics.or(word, 0, bits);
  }

  /** Copies bytes into guest RAM at a guest physical address (checked against RAM bounds). */
  writePhys(addr: bigint, bytes: Uint8Array): void {
    const off = addr - RAM_BASE;
    if (off < 0n || off + BigInt(bytes.length) > BigInt(this.layout.ramBytes)) {
      throw new RangeError(`0x${addr.toString(16)}+${bytes.length} is outside guest RAM`);
    }
    this.ram.set(bytes, Number(off));
    this.ex.invalidateDecoded();
  }

  /** The hart's architectural state (a copy of its block up to the TLBs). Call between run() calls. */
  saveState(): HartSnapshot {
    this.ex.prepareSave();
    const block = this.blockBytes.slice();
    // the words the host sets for this machine's own sake (a flush it asked for, the write log of a migration
    // under way) are not the guest's state: a machine restored from it starts without them
    const v = new HartStateView(new DataView(block.buffer, block.byteOffset, block.length));
    v.flushRequest = 0;
    v.dirtyLog = 0;
    return { layoutVersion: HART_LAYOUT_VERSION, block };
  }

  /** Puts saved state back (checked first: nothing changes when it is refused) and drops what was derived from
   *  the old state (TLBs, decoded instructions); the LR/SC reservation is part of the saved state and stays. */
  restoreState(s: HartSnapshot): void {
    if (s.layoutVersion !== HART_LAYOUT_VERSION) {
      throw new SnapshotError(`the hart state has layout 0x${s.layoutVersion.toString(16)}, this build expects 0x${HART_LAYOUT_VERSION.toString(16)}`);
    }
    if (s.block.length !== HART_BLOCK.SAVED_BYTES) throw new SnapshotError(`the hart state has ${s.block.length} bytes, not ${HART_BLOCK.SAVED_BYTES}`);
    const v = new HartStateView(new DataView(s.block.buffer, s.block.byteOffset, s.block.length));
    if (v.priv !== 0 && v.priv !== 1 && v.priv !== 3) throw new SnapshotError(`the hart state has privilege ${v.priv}`);
    if (v.mhartid !== BigInt(this.hartId)) throw new SnapshotError(`the hart state is hart ${v.mhartid}'s, not hart ${this.hartId}'s`);
    if (v.exc !== 0) throw new SnapshotError("the hart state was saved in the middle of an instruction");
    this.blockBytes.set(s.block);
    this.ex.stateRestored();
  }
}
