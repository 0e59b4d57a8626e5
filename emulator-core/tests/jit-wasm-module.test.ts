// The JIT's WebAssembly module builder (src/jit/wasm-module.ts): its encodings, and modules the engine accepts
// and runs (a shared memory import with the hart's limits, function imports, locals, exports).

import { describe, it, expect } from "vitest";
import { FunctionBody, ModuleBuilder, I32, I64, Op, VOID, uleb, sleb } from "../src/jit/wasm-module.ts";

const enc = (f: (out: number[], v: number | bigint) => void, v: number | bigint) => { const o: number[] = []; f(o, v); return o; };

describe("LEB128", () => {
  it("encodes unsigned values", () => {
    expect(enc(uleb, 0)).toEqual([0]);
    expect(enc(uleb, 127)).toEqual([0x7f]);
    expect(enc(uleb, 128)).toEqual([0x80, 0x01]);
    expect(enc(uleb, 624485)).toEqual([0xe5, 0x8e, 0x26]);
    expect(enc(uleb, 0xffffffff)).toEqual([0xff, 0xff, 0xff, 0xff, 0x0f]);
    expect(() => enc(uleb, -1)).toThrow();
  });
  it("encodes signed values, the sign in bit 6 of the last byte", () => {
    expect(enc(sleb, 0)).toEqual([0]);
    expect(enc(sleb, 63)).toEqual([0x3f]);
    expect(enc(sleb, 64)).toEqual([0xc0, 0x00]);
    expect(enc(sleb, -1)).toEqual([0x7f]);
    expect(enc(sleb, -64)).toEqual([0x40]);
    expect(enc(sleb, -65)).toEqual([0xbf, 0x7f]);
    expect(enc(sleb, -123456)).toEqual([0xc0, 0xbb, 0x78]);
    expect(enc(sleb, -(1n << 63n))).toEqual([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7f]);
    expect(enc(sleb, (1n << 63n) - 1n)).toEqual([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00]);
  });
});

function instantiate(bytes: Uint8Array<ArrayBuffer>, imports: WebAssembly.Imports = {}): WebAssembly.Exports {
  expect(WebAssembly.validate(bytes)).toBe(true);
  return new WebAssembly.Instance(new WebAssembly.Module(bytes), imports).exports;
}

describe("modules", () => {
  it("builds a function with parameters, locals and constants of every width", () => {
    const m = new ModuleBuilder();
    const f = new FunctionBody([I64, I64]);
    const t = f.addLocal(I64);
    f.localGet(0); f.localGet(1); f.op(Op.i64Add); f.localSet(t);
    f.localGet(t); f.i64Const(-0x123456789abcdefn); f.op(Op.i64Add);
    m.addFunction([I64, I64], [I64], f, "addc");
    const g = new FunctionBody([]);
    g.i32Const(-2147483648);
    m.addFunction([], [I32], g, "min");
    const ex = instantiate(m.build()) as { addc(a: bigint, b: bigint): bigint; min(): number };
    expect(ex.addc(5n, 7n)).toBe(12n - 0x123456789abcdefn);
    expect(ex.addc(-1n, 0n)).toBe(-1n - 0x123456789abcdefn);
    expect(ex.min()).toBe(-2147483648);
  });

  it("imports a shared memory with the hart's limits and functions, and calls them", () => {
    const m = new ModuleBuilder();
    m.importMemory("env", "memory", { min: 32, max: 65536, shared: true });
    const twice = m.importFunction("env", "twice", [I64], [I64]);
    const f = new FunctionBody([I32]);
    // mem[a] = twice(mem[a]) as i64; returns the low half
    f.localGet(0);
    f.localGet(0); f.mem(Op.i64Load, 3, 8);
    f.call(twice);
    f.mem(Op.i64Store, 3, 8);
    f.localGet(0); f.mem(Op.i32Load, 2, 8);
    m.addFunction([I32], [I32], f, "run");
    const memory = new WebAssembly.Memory({ initial: 40, maximum: 40, shared: true });
    const dv = new DataView(memory.buffer);
    dv.setBigUint64(1008, 21n, true);
    const ex = instantiate(m.build(), { env: { memory, twice: (v: bigint) => v * 2n } }) as { run(a: number): number };
    expect(ex.run(1000)).toBe(42);
    expect(dv.getBigUint64(1008, true)).toBe(42n);
    // a memory the limits do not admit is refused by the engine: the import is checked, not ignored
    const unshared = new WebAssembly.Memory({ initial: 40, maximum: 40 });
    expect(() => new WebAssembly.Instance(new WebAssembly.Module(m.build()), { env: { memory: unshared, twice: (v: bigint) => v } })).toThrow();
  });

  it("reuses released temporaries of the same type, and encodes if/else with results", () => {
    const f = new FunctionBody([I32]);
    const a = f.tempLocal("i64");
    const b = f.tempLocal("i32");
    f.releaseLocal(a);
    expect(f.tempLocal("i64")).toBe(a);
    expect(f.tempLocal("i64")).not.toBe(a);
    expect(b).not.toBe(a);
    // (if (result i64) (local.get 0) (then 7) (else 9))
    f.localGet(0); f.op(Op.if); f.op(I64); f.i64Const(7n); f.op(Op.else); f.i64Const(9n); f.op(Op.end);
    f.op(Op.drop);
    f.localGet(0); f.op(Op.if); f.op(VOID); f.i32Const(1); f.op(Op.return); f.op(Op.end);
    f.i32Const(0);
    const m = new ModuleBuilder();
    m.addFunction([I32], [I32], f, "g");
    const ex = instantiate(m.build()) as { g(x: number): number };
    expect([ex.g(0), ex.g(5)]).toEqual([0, 1]);
  });

  it("deduplicates types and refuses imports after functions", () => {
    const m = new ModuleBuilder();
    expect(m.type([I32], [I64])).toBe(m.type([I32], [I64]));
    expect(m.type([I64], [I32])).not.toBe(m.type([I32], [I64]));
    const f = new FunctionBody([]);
    f.i32Const(1);
    m.addFunction([], [I32], f);
    expect(() => m.importFunction("env", "late", [], [])).toThrow(/before/);
    expect(() => m.addFunction([I32], [], new FunctionBody([]))).toThrow(/parameters/);
    expect(() => new ModuleBuilder().importMemory("env", "m", { min: 1, shared: true })).toThrow(/maximum/);
  });
  it("writes branch hints to metadata.code.branch_hint before the code, at each if's offset in its body", () => {
    const m = new ModuleBuilder();
    m.addFunction([I32], [I32], (() => { const f = new FunctionBody([I32]); f.i32Const(1); return f; })());
    // (x) -> x > 10 ? 1 : 2, the if hinted unlikely, with locals before the code (their declarations count)
    const f = new FunctionBody([I32]);
    const t = f.addLocal(I64), r = f.addLocal(I32); // declared as 2 runs: [2, 1, i64, 1, i32], 5 bytes
    f.i64Const(5n); f.localSet(t); // 4 bytes
    f.i32Const(2); f.localSet(r); // 4 bytes
    f.localGet(0); f.i32Const(11); f.op(Op.i32GeS); // 5 bytes: the if is at 5 + 13
    f.branchHint(false);
    f.op(Op.if); f.op(VOID);
    f.i32Const(1); f.localSet(r);
    f.op(Op.end);
    f.localGet(r);
    const index = m.addFunction([I32], [I32], f, "f");
    const bytes = m.build();
    const module = new WebAssembly.Module(bytes);
    const [section] = WebAssembly.Module.customSections(module, "metadata.code.branch_hint");
    // the name's length and name, one function (its index), one hint: the if at 18, size 1, unlikely
    expect([...new Uint8Array(section)]).toEqual([1, index, 1, 18, 1, 0]);
    // the body's bytes at that offset are the if
    const sectionAt = (id: number) => { for (let i = 8; i < bytes.length;) { const sid = bytes[i]; let n = 0, shift = 0, j = i + 1; for (;;) { const b = bytes[j++]; n |= (b & 0x7f) << shift; shift += 7; if (!(b & 0x80)) break; } if (sid === id) return j; i = j + n; } return -1; };
    expect(sectionAt(0)).toBeLessThan(sectionAt(10)); // the hints come before the code section
    let at = sectionAt(10) + 1; // past the count of bodies
    at += 1 + bytes[at]; // the first body: its size, its bytes
    at += 1; // the second body's size (one byte)
    expect(bytes[at + 18]).toBe(Op.if);
    const run = new WebAssembly.Instance(module).exports.f as (x: number) => number;
    expect([run(11), run(10)]).toEqual([1, 2]);
  });
});
