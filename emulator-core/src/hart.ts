// The TypeScript face of one hart: instantiates hart.wasm on a shared memory and wraps its exports.

import { computeLayout, type MemoryLayout, RAM_BASE } from "./layout.ts";

export enum StopReason {
  Slice = 0,
  Wfi = 1,
  Mmio = 2,
  Htif = 3,
  Fatal = 4,
  Ecall = 5,
}

interface HartExports {
  init(hartId: number, hartBase: number, ramOffset: number, ramBase: bigint, ramSize: bigint,
    decodeMap: number, decodeOwners: number, decodeSlots: number, decodeSlotCount: number): void;
  reset(hartId: number, pc: bigint): void;
  run(budget: number): number;
  getPc(): bigint;
  setPc(v: bigint): void;
  getPriv(): number;
  setPriv(p: number): void;
  getInstret(): bigint;
  getXregsAddr(): number;
  getFregsAddr(): number;
  getMmioAddr(): bigint;
  getMmioSize(): number;
  getMmioIsStore(): number;
  getMmioData(): bigint;
  mmioComplete(v: bigint): void;
  mmioFail(): void;
  setTohost(addr: bigint): void;
  getHtifValue(): bigint;
  setInterruptLines(mask: bigint): void;
  getInterruptLines(): bigint;
  setMtime(t: bigint): void;
  getMip(): bigint;
  getMie(): bigint;
  getMstatus(): bigint;
  getSatp(): bigint;
  getMcause(): bigint;
  getScause(): bigint;
  getMepc(): bigint;
  getSepc(): bigint;
  getMtval(): bigint;
  getStval(): bigint;
  invalidateDecoded(): void;
  flushTlb(): void;
  setMedeleg(v: bigint): void;
  setMideleg(v: bigint): void;
  setMcounteren(v: bigint): void;
  setScounteren(v: bigint): void;
  setSbiInHost(on: number): void;
}

/** A RISC-V hart running in its own wasm instance over a shared memory that holds guest RAM. */
export class Hart {
  readonly memory: WebAssembly.Memory;
  readonly layout: MemoryLayout;
  readonly ex: HartExports;
  /** Guest RAM as bytes (a view of the shared memory). */
  readonly ram: Uint8Array;
  private readonly x: BigUint64Array;

  constructor(module: WebAssembly.Module, layout: MemoryLayout, memory?: WebAssembly.Memory, hartId = 0) {
    this.layout = layout;
    this.memory = memory ?? new WebAssembly.Memory({ initial: layout.pages, maximum: layout.pages, shared: true });
    const instance = new WebAssembly.Instance(module, {
      env: {
        memory: this.memory,
        abort: () => { throw new Error("hart aborted"); },
      },
    });
    this.ex = instance.exports as unknown as HartExports;
    this.ex.init(hartId, layout.hartBase, layout.ramOffset, RAM_BASE, BigInt(layout.ramBytes),
      layout.decodeMap, layout.decodeOwners, layout.decodeSlots, layout.decodeSlotCount);
    this.ram = new Uint8Array(this.memory.buffer, layout.ramOffset, layout.ramBytes);
    this.x = new BigUint64Array(this.memory.buffer, this.ex.getXregsAddr(), 32);
  }

  static create(module: WebAssembly.Module, ramMiB: number): Hart {
    return new Hart(module, computeLayout(ramMiB));
  }

  get pc(): bigint { return this.ex.getPc(); }
  set pc(v: bigint) { this.ex.setPc(v); }
  reg(i: number): bigint { return this.x[i]; }
  setReg(i: number, v: bigint): void { if (i !== 0) this.x[i] = BigInt.asUintN(64, v); }
  get instret(): bigint { return this.ex.getInstret(); }

  run(budget: number): StopReason { return this.ex.run(budget) as StopReason; }

  /** Copies bytes into guest RAM at a guest physical address (checked against RAM bounds). */
  writePhys(addr: bigint, bytes: Uint8Array): void {
    const off = addr - RAM_BASE;
    if (off < 0n || off + BigInt(bytes.length) > BigInt(this.layout.ramBytes)) {
      throw new RangeError(`0x${addr.toString(16)}+${bytes.length} is outside guest RAM`);
    }
    this.ram.set(bytes, Number(off));
    this.ex.invalidateDecoded();
  }
}
