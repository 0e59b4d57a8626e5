// A small WebAssembly module builder: what the block compiler needs and no more. Types, imports (a shared memory,
// functions), functions with locals, exports; the binary format of the WebAssembly core specification 2.0.
// Everything is built as plain byte arrays: a block is a few hundred bytes, and the compiler runs on the VM's
// thread, so the builder avoids anything that allocates per opcode beyond pushing onto an array.

import type { SemanticsSink } from "./semantics.ts";

export const I32 = 0x7f;
export const I64 = 0x7e;
export type ValType = typeof I32 | typeof I64;

// Opcodes the compiler uses by name (the semantics emitters carry their own).
/** the prefix of the threads proposal's atomic instructions */
const ATOMIC_PREFIX = 0xfe;

export const Op = {
  unreachable: 0x00, block: 0x02, loop: 0x03, if: 0x04, else: 0x05, end: 0x0b, br: 0x0c, brIf: 0x0d, brTable: 0x0e,
  return: 0x0f, returnCall: 0x12, returnCallIndirect: 0x13,
  call: 0x10, drop: 0x1a, select: 0x1b, localGet: 0x20, localSet: 0x21, localTee: 0x22,
  i32Load: 0x28, i64Load: 0x29, i64Load8S: 0x30, i64Load8U: 0x31, i64Load16S: 0x32, i64Load16U: 0x33,
  i64Load32S: 0x34, i64Load32U: 0x35, i32Store: 0x36, i64Store: 0x37, i64Store8: 0x3c, i64Store16: 0x3d,
  i64Store32: 0x3e, i32Store8: 0x3a, i32Store16: 0x3b, i32Const: 0x41, i64Const: 0x42,
  i32Eqz: 0x45, i32Eq: 0x46, i32Ne: 0x47, i32LtU: 0x49, i32GtU: 0x4b, i32LeU: 0x4d, i64Eqz: 0x50, i64Eq: 0x51, i64Ne: 0x52,
  i32Add: 0x6a, i32Sub: 0x6b, i32And: 0x71, i32Shl: 0x74, i32ShrS: 0x75, i32ShrU: 0x76, i32GeS: 0x4e, i64Add: 0x7c, i64And: 0x83, i64Or: 0x84, i64Xor: 0x85, i64Shl: 0x86, i64ShrU: 0x88, i64ExtendI32U: 0xad, i64ExtendI32S: 0xac,
  i32WrapI64: 0xa7, i64Extend8S: 0xc2, i64Extend16S: 0xc3, i64Extend32S: 0xc4,
} as const;

/** Block type of a block, loop or if that leaves nothing on the stack. */
export const VOID = 0x40;

/** Where bytes are appended: a number[] or a ByteBuffer. */
export interface ByteSink { push(byte: number): unknown }

/** A growable byte array: a function's code is appended a byte at a time, and copied whole. */
export class ByteBuffer implements ByteSink {
  bytes: Uint8Array;
  length = 0;
  constructor(capacity = 1024) { this.bytes = new Uint8Array(capacity); }
  push(byte: number): void {
    if (this.length === this.bytes.length) this.grow(1);
    this.bytes[this.length++] = byte;
  }
  append(src: Uint8Array | readonly number[]): void {
    if (this.length + src.length > this.bytes.length) this.grow(src.length);
    if (src instanceof Uint8Array) this.bytes.set(src, this.length);
    else for (let i = 0; i < src.length; i++) this.bytes[this.length + i] = src[i];
    this.length += src.length;
  }
  view(): Uint8Array { return this.bytes.subarray(0, this.length); }
  private grow(atLeast: number): void {
    const next = new Uint8Array(Math.max(this.bytes.length * 2, this.length + atLeast, 64));
    next.set(this.bytes.subarray(0, this.length));
    this.bytes = next;
  }
}

/** Appends v as unsigned LEB128. */
export function uleb(out: ByteSink, v: number | bigint): void {
  if (typeof v === "number" && v >= 0 && v <= 0xffffffff && Number.isInteger(v)) {
    // the common case (indices, offsets, sizes) without BigInt
    do {
      const b = v % 128;
      v = Math.floor(v / 128);
      out.push(v !== 0 ? b | 0x80 : b);
    } while (v !== 0);
    return;
  }
  let x = BigInt(v);
  if (x < 0n) throw new RangeError(`uleb of a negative number ${x}`);
  do {
    let b = Number(x & 0x7fn);
    x >>= 7n;
    if (x !== 0n) b |= 0x80;
    out.push(b);
  } while (x !== 0n);
}

/** Appends v as signed LEB128 (the encoding of i32.const and i64.const immediates). */
export function sleb(out: ByteSink, v: number | bigint): void {
  if (typeof v === "bigint" && v >= -0x80000000n && v <= 0x7fffffffn) v = Number(v);
  if (typeof v === "number" && (v | 0) === v) {
    for (;;) {
      const b = v & 0x7f;
      v >>= 7; // arithmetic
      const done = (v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0);
      out.push(done ? b : b | 0x80);
      if (done) return;
    }
  }
  let x = BigInt(v);
  for (;;) {
    const b = Number(x & 0x7fn);
    x >>= 7n; // arithmetic: BigInt shifts keep the sign
    const done = (x === 0n && (b & 0x40) === 0) || (x === -1n && (b & 0x40) !== 0);
    out.push(done ? b : b | 0x80);
    if (done) return;
  }
}

const utf8 = new TextEncoder();

function name(out: number[], s: string): void {
  // (ASCII, every name the JIT gives, without TextEncoder: an export per block made it a twentieth of a build)
  if (/^[\x00-\x7f]*$/.test(s)) {
    uleb(out, s.length);
    for (let i = 0; i < s.length; i++) out.push(s.charCodeAt(i));
    return;
  }
  const bytes = utf8.encode(s);
  uleb(out, bytes.length);
  for (const b of bytes) out.push(b);
}

/** Code buffers of function bodies already built into a module, for the next bodies: a new 1 KiB typed array per
 *  function was a seventh of the time a region took to build. */
const spareCode: ByteBuffer[] = [];
const MAX_SPARE_CODE = 256;

// push(...a) would pass every byte as an argument: a large body could exceed the engine's argument limit
function append(out: number[], bytes: readonly number[]): void {
  for (let i = 0; i < bytes.length; i++) out.push(bytes[i]);
}

function vec(out: number[], items: number[][]): void {
  uleb(out, items.length);
  for (const it of items) append(out, it);
}

/** The body of one function: its extra locals and its code. Implements what the semantics emitters need. A body
 *  belongs to the one module it is built into (ModuleBuilder.build takes its code buffer for the next body). */
export class FunctionBody implements SemanticsSink {
  code: ByteBuffer = spareCode.pop() ?? new ByteBuffer();
  private readonly localTypes: ValType[] = [];
  private readonly free: Map<ValType, number[]> = new Map([[I32, []], [I64, []]]);

  /** params: the function's parameter types (locals 0..n-1). */
  constructor(readonly params: readonly ValType[]) {}

  /** A new local of this type; returns its index. */
  addLocal(type: ValType): number {
    this.localTypes.push(type);
    return this.params.length + this.localTypes.length - 1;
  }
  tempLocal(type: "i32" | "i64"): number {
    const t = type === "i32" ? I32 : I64;
    return this.free.get(t)!.pop() ?? this.addLocal(t);
  }
  releaseLocal(index: number): void {
    const t = index < this.params.length ? this.params[index] : this.localTypes[index - this.params.length];
    this.free.get(t)!.push(index);
  }

  /** Branch hints (the branch hinting proposal's metadata.code.branch_hint): pairs of the offset in code of an if or
   *  br_if and whether it is likely taken (1) or not (0). */
  private readonly hints: number[] = [];
  /** the hints as encodeInto last placed them: pairs of an offset from the start of the encoded body (its local
   *  declarations) and the hint */
  encodedHints: number[] = [];

  /** Hints that the if or br_if written next is likely (true) or unlikely (false) to be taken: V8's optimizing tier
   *  lays the unlikely way out of the hot path (a deferred block). */
  branchHint(likely: boolean): void { this.hints.push(this.code.length, likely ? 1 : 0); }

  op(byte: number): void { this.code.push(byte); }
  i32Const(v: number): void { this.code.push(Op.i32Const); sleb(this.code, v | 0); }
  i64Const(v: bigint): void { this.code.push(Op.i64Const); sleb(this.code, BigInt.asIntN(64, v)); }
  localGet(i: number): void { this.code.push(Op.localGet); uleb(this.code, i); }
  localSet(i: number): void { this.code.push(Op.localSet); uleb(this.code, i); }
  localTee(i: number): void { this.code.push(Op.localTee); uleb(this.code, i); }
  call(funcIndex: number): void { this.code.push(Op.call); uleb(this.code, funcIndex); }
  /** A load or store with its memarg: alignment as log2 of bytes, and a constant offset. */
  mem(opcode: number, alignLog2: number, offset: number): void {
    this.code.push(opcode);
    uleb(this.code, alignLog2);
    uleb(this.code, offset);
  }
  /** An atomic memory instruction (the threads proposal's 0xfe prefix, then its opcode and memarg). */
  atomic(opcode: number, alignLog2: number, offset: number): void {
    this.code.push(ATOMIC_PREFIX);
    uleb(this.code, opcode);
    uleb(this.code, alignLog2);
    uleb(this.code, offset);
  }

  /** Appends the encoded body to out: its size, local declarations (runs of one type), code, end. */
  encodeInto(out: ByteBuffer): void {
    const decls: number[] = [];
    let runs = 0;
    for (let i = 0; i < this.localTypes.length;) {
      const t = this.localTypes[i];
      let n = 1;
      while (i + n < this.localTypes.length && this.localTypes[i + n] === t) n++;
      uleb(decls, n);
      decls.push(t);
      runs++;
      i += n;
    }
    const head: number[] = [];
    uleb(head, runs);
    const prefix = head.length + decls.length;
    this.encodedHints = this.hints.map((v, i) => (i & 1 ? v : v + prefix));
    uleb(out, prefix + this.code.length + 1);
    out.append(head);
    out.append(decls);
    out.append(this.code.view());
    out.push(Op.end);
  }
}

export interface MemoryLimits {
  /** wasm pages of 64 KiB */
  min: number;
  max?: number;
  shared?: boolean;
}

interface FuncType { params: ValType[]; results: ValType[] }

/** A module being built. Imports come first: a function index counts the imported functions before it. */
export class ModuleBuilder {
  private readonly types: FuncType[] = [];
  private readonly imports: number[][] = [];
  private importedFuncs = 0;
  private readonly funcs: { type: number; body: FunctionBody }[] = [];
  private readonly exports: number[][] = [];
  /** function names for the "name" custom section (profilers and debuggers show them), by function index */
  private readonly functionNames = new Map<number, string>();

  /** Names function `index` in the module's name section (only written when a function has a name). */
  nameFunction(index: number, fnName: string): void { this.functionNames.set(index, fnName); }

  /** The index of the function type (params) -> (results), added once. */
  type(params: ValType[], results: ValType[]): number {
    const i = this.types.findIndex((t) => t.params.join() === params.join() && t.results.join() === results.join());
    if (i >= 0) return i;
    this.types.push({ params: [...params], results: [...results] });
    return this.types.length - 1;
  }

  importMemory(module: string, field: string, limits: MemoryLimits): void {
    const e: number[] = [];
    name(e, module);
    name(e, field);
    e.push(0x02); // memory
    if (limits.shared && limits.max === undefined) throw new Error("a shared memory needs a maximum");
    e.push((limits.max !== undefined ? 1 : 0) | (limits.shared ? 2 : 0));
    uleb(e, limits.min);
    if (limits.max !== undefined) uleb(e, limits.max);
    this.imports.push(e);
  }

  /** Imports a table of funcref (index 0: the module has no other). */
  importTable(module: string, field: string, min: number): void {
    const e: number[] = [];
    name(e, module);
    name(e, field);
    e.push(0x01, 0x70, 0x00); // table, funcref, no maximum
    uleb(e, min);
    this.imports.push(e);
  }

  /** Imports a function; returns its function index. */
  importFunction(module: string, field: string, params: ValType[], results: ValType[]): number {
    if (this.funcs.length) throw new Error("imports must come before the module's own functions");
    const e: number[] = [];
    name(e, module);
    name(e, field);
    e.push(0x00); // function
    uleb(e, this.type(params, results));
    this.imports.push(e);
    return this.importedFuncs++;
  }

  /** Adds a function (its body built with the same parameter types); returns its function index. */
  addFunction(params: ValType[], results: ValType[], body: FunctionBody, exportName?: string): number {
    if (body.params.join() !== params.join()) throw new Error("the body was built for other parameters");
    this.funcs.push({ type: this.type(params, results), body });
    const index = this.importedFuncs + this.funcs.length - 1;
    if (exportName !== undefined) {
      const e: number[] = [];
      name(e, exportName);
      e.push(0x00);
      uleb(e, index);
      this.exports.push(e);
    }
    return index;
  }

  build(): Uint8Array<ArrayBuffer> {
    const out = new ByteBuffer();
    out.append([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
    const section = (id: number, content: number[] | ByteBuffer) => {
      out.push(id);
      uleb(out, content.length);
      out.append(content instanceof ByteBuffer ? content.view() : content);
    };
    const types: number[] = [];
    vec(types, this.types.map((t) => {
      const e = [0x60];
      uleb(e, t.params.length); e.push(...t.params);
      uleb(e, t.results.length); e.push(...t.results);
      return e;
    }));
    section(1, types);
    if (this.imports.length) { const s: number[] = []; vec(s, this.imports); section(2, s); }
    const fs: number[] = [];
    vec(fs, this.funcs.map((f) => { const e: number[] = []; uleb(e, f.type); return e; }));
    section(3, fs);
    if (this.exports.length) { const s: number[] = []; vec(s, this.exports); section(7, s); }
    const code = new ByteBuffer();
    uleb(code, this.funcs.length);
    for (const f of this.funcs) {
      f.body.encodeInto(code);
      // its code buffer serves the next body (this one is built)
      f.body.code.length = 0;
      if (spareCode.length < MAX_SPARE_CODE) spareCode.push(f.body.code);
      f.body.code = new ByteBuffer(0);
    }
    // the branch hints come before the code section they are about
    const hinted = this.funcs.map((f, i) => [this.importedFuncs + i, f.body.encodedHints] as const).filter(([, h]) => h.length);
    if (hinted.length) {
      const custom: number[] = [];
      name(custom, "metadata.code.branch_hint");
      uleb(custom, hinted.length);
      for (const [index, h] of hinted) {
        uleb(custom, index);
        uleb(custom, h.length / 2);
        for (let i = 0; i < h.length; i += 2) { uleb(custom, h[i]); custom.push(1, h[i + 1]); }
      }
      section(0, custom);
    }
    section(10, code);
    if (this.functionNames.size) {
      // the name section's function names subsection (id 1): a name map in increasing index order
      const map: number[] = [];
      const sorted = [...this.functionNames].sort((a, b) => a[0] - b[0]);
      uleb(map, sorted.length);
      for (const [i, n] of sorted) { uleb(map, i); name(map, n); }
      const custom: number[] = [];
      name(custom, "name");
      custom.push(1);
      uleb(custom, map.length);
      append(custom, map);
      section(0, custom);
    }
    return out.view().slice() as Uint8Array<ArrayBuffer>;
  }
}
