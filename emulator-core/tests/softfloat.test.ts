// Tests for emulator-core/assembly/softfloat.ts.
// The module is compiled twice: as written (host fast paths enabled) and with
// FAST = false (pure software path). Both are checked against hand-computed
// cases and against an exact BigInt reference model written here.
import { beforeAll, describe, expect, it } from "vitest";
import asc from "assemblyscript/asc";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const buildDir = join(here, "..", "build", "softfloat-test");
const srcFile = join(here, "..", "assembly", "softfloat.ts");

type Mod = Record<string, any>;
let fast: Mod;
let soft: Mod;

async function compile(entry: string, out: string): Promise<Mod> {
  const { error, stderr } = await asc.main([
    entry, "--outFile", out,
    "--runtime", "stub", "-O3", "--noAssert", "--enable", "threads",
  ]);
  if (error) throw new Error(stderr.toString());
  const { instance } = await WebAssembly.instantiate(readFileSync(out), {
    env: { abort() { throw new Error("abort"); } },
  });
  return instance.exports as Mod;
}

beforeAll(async () => {
  mkdirSync(join(buildDir, "soft"), { recursive: true });
  const src = readFileSync(srcFile, "utf8");
  const marker = "const FAST: bool = true;";
  expect(src.includes(marker)).toBe(true);
  writeFileSync(join(buildDir, "soft", "softfloat.ts"), src.replace(marker, "const FAST: bool = false;"));
  writeFileSync(join(buildDir, "soft", "entry.ts"), `export * from "./softfloat";\n`);
  fast = await compile(join(here, "softfloat", "entry.ts"), join(buildDir, "fast.wasm"));
  soft = await compile(join(buildDir, "soft", "entry.ts"), join(buildDir, "soft.wasm"));
});

// ---------------------------------------------------------------------------
// Formats and the exact reference model

const NV = 16, DZ = 8, OF = 4, UF = 2, NX = 1;
const RNE = 0, RTZ = 1, RDN = 2, RUP = 3, RMM = 4;

interface Fmt { p: number; w: number; ebits: number; bias: number; emin: number; emax: number; name: string }
const F32: Fmt = { p: 24, w: 32, ebits: 8, bias: 127, emin: -126, emax: 127, name: "f32" };
const F64: Fmt = { p: 53, w: 64, ebits: 11, bias: 1023, emin: -1022, emax: 1023, name: "f64" };

const cnan = (f: Fmt) => (f.w === 32 ? 0x7fc00000n : 0x7ff8000000000000n);
const signBit = (f: Fmt) => 1n << BigInt(f.w - 1);
const infBits = (f: Fmt) => BigInt((1 << f.ebits) - 1) << BigInt(f.p - 1);

type Cls = "zero" | "fin" | "inf" | "qnan" | "snan";
interface Dec { cls: Cls; sign: number; m: bigint; e: number }

function decode(bits: bigint, f: Fmt): Dec {
  const fb = BigInt(f.p - 1);
  const E = Number((bits >> fb) & BigInt((1 << f.ebits) - 1));
  const frac = bits & ((1n << fb) - 1n);
  const sign = Number(bits >> BigInt(f.w - 1)) & 1;
  if (E === (1 << f.ebits) - 1) {
    if (frac === 0n) return { cls: "inf", sign, m: 0n, e: 0 };
    return { cls: frac & (1n << (fb - 1n)) ? "qnan" : "snan", sign, m: 0n, e: 0 };
  }
  if (E === 0) {
    if (frac === 0n) return { cls: "zero", sign, m: 0n, e: 0 };
    return { cls: "fin", sign, m: frac, e: f.emin - (f.p - 1) };
  }
  return { cls: "fin", sign, m: frac | (1n << fb), e: E - f.bias - (f.p - 1) };
}
const isNaNc = (d: Dec) => d.cls === "qnan" || d.cls === "snan";

function bitlen(m: bigint): number { return m === 0n ? 0 : m.toString(2).length; }

interface Res { bits: bigint; flags: number }

// Round sign * (m + sticky*eps) * 2^e to format f. m > 0. When sticky is set,
// m must carry enough extra bits that rounding always shifts right.
function roundIntShift(m: bigint, shift: number, sticky: boolean, sign: number, rm: number): { q: bigint; inx: boolean } {
  if (shift <= 0) {
    if (sticky) throw new Error("reference: not enough precision");
    return { q: m << BigInt(-shift), inx: false };
  }
  const s = BigInt(shift);
  let q = m >> s;
  const rest = m & ((1n << s) - 1n);
  const half = 1n << (s - 1n);
  const inx = rest !== 0n || sticky;
  const above = rest > half || (rest === half && sticky);
  const tie = rest === half && !sticky;
  let up = false;
  if (rm === RNE) up = above || (tie && (q & 1n) === 1n);
  else if (rm === RMM) up = above || tie;
  else if (rm === RDN) up = inx && sign === 1;
  else if (rm === RUP) up = inx && sign === 0;
  if (up) q++;
  return { q, inx };
}

function roundRef(sign: number, m: bigint, e: number, sticky: boolean, rm: number, f: Fmt): Res {
  const L = bitlen(m);
  const shiftU = L - f.p;
  const shiftB = Math.max(shiftU, f.emin - f.p + 1 - e);
  const sb = sign ? signBit(f) : 0n;
  const { q, inx } = roundIntShift(m, shiftB, sticky, sign, rm);
  const ebase = e + shiftB;
  if (q === 0n) return { bits: sb, flags: inx ? UF | NX : 0 };
  const Lq = bitlen(q);
  const lead = ebase + Lq - 1;
  if (lead > f.emax) {
    const toMax = rm === RTZ || (rm === RDN && !sign) || (rm === RUP && sign === 1);
    return { bits: sb | (toMax ? infBits(f) - 1n : infBits(f)), flags: OF | NX };
  }
  let flags = 0;
  if (inx) {
    const u = roundIntShift(m, shiftU, sticky, sign, rm);
    const leadU = e + shiftU + bitlen(u.q) - 1;
    flags = NX | (leadU < f.emin ? UF : 0);
  }
  if (lead < f.emin) {
    // subnormal: ebase == emin - p + 1
    return { bits: sb | (q << BigInt(ebase - (f.emin - f.p + 1))), flags };
  }
  const sig = Lq >= f.p ? q >> BigInt(Lq - f.p) : q << BigInt(f.p - Lq);
  const E = BigInt(lead + f.bias);
  return { bits: sb | (E << BigInt(f.p - 1)) | (sig & ((1n << BigInt(f.p - 1)) - 1n)), flags };
}

// signed exact value helpers: value = m * 2^e with signed m
function exactResult(m: bigint, e: number, sticky: boolean, rm: number, f: Fmt, zeroSign: number): Res {
  if (m === 0n && !sticky) return { bits: zeroSign ? signBit(f) : 0n, flags: 0 };
  const sign = m < 0n ? 1 : 0;
  return roundRef(sign, m < 0n ? -m : m, e, sticky, rm, f);
}
const sval = (d: Dec) => (d.sign ? -d.m : d.m);

function refAdd(a: bigint, b: bigint, rm: number, f: Fmt): Res {
  const A = decode(a, f), B = decode(b, f);
  if (isNaNc(A) || isNaNc(B)) return { bits: cnan(f), flags: A.cls === "snan" || B.cls === "snan" ? NV : 0 };
  if (A.cls === "inf" && B.cls === "inf") return A.sign !== B.sign ? { bits: cnan(f), flags: NV } : { bits: a, flags: 0 };
  if (A.cls === "inf") return { bits: a, flags: 0 };
  if (B.cls === "inf") return { bits: b, flags: 0 };
  if (A.cls === "zero" && B.cls === "zero") return { bits: A.sign === B.sign ? a : rm === RDN ? signBit(f) : 0n, flags: 0 };
  const e = Math.min(A.cls === "zero" ? Infinity : A.e, B.cls === "zero" ? Infinity : B.e);
  const m = (sval(A) << BigInt(A.cls === "zero" ? 0 : A.e - e)) + (sval(B) << BigInt(B.cls === "zero" ? 0 : B.e - e));
  return exactResult(m, e, false, rm, f, rm === RDN ? 1 : 0);
}

function refMul(a: bigint, b: bigint, rm: number, f: Fmt): Res {
  const A = decode(a, f), B = decode(b, f);
  if (isNaNc(A) || isNaNc(B)) return { bits: cnan(f), flags: A.cls === "snan" || B.cls === "snan" ? NV : 0 };
  const sign = A.sign ^ B.sign;
  if (A.cls === "inf" || B.cls === "inf") {
    if (A.cls === "zero" || B.cls === "zero") return { bits: cnan(f), flags: NV };
    return { bits: (sign ? signBit(f) : 0n) | infBits(f), flags: 0 };
  }
  if (A.cls === "zero" || B.cls === "zero") return { bits: sign ? signBit(f) : 0n, flags: 0 };
  return roundRef(sign, A.m * B.m, A.e + B.e, false, rm, f);
}

function refDiv(a: bigint, b: bigint, rm: number, f: Fmt): Res {
  const A = decode(a, f), B = decode(b, f);
  if (isNaNc(A) || isNaNc(B)) return { bits: cnan(f), flags: A.cls === "snan" || B.cls === "snan" ? NV : 0 };
  const sign = A.sign ^ B.sign;
  const sb = sign ? signBit(f) : 0n;
  if (A.cls === "inf") return B.cls === "inf" ? { bits: cnan(f), flags: NV } : { bits: sb | infBits(f), flags: 0 };
  if (B.cls === "inf") return { bits: sb, flags: 0 };
  if (B.cls === "zero") return A.cls === "zero" ? { bits: cnan(f), flags: NV } : { bits: sb | infBits(f), flags: DZ };
  if (A.cls === "zero") return { bits: sb, flags: 0 };
  const K = 200;
  const num = A.m << BigInt(K);
  return roundRef(sign, num / B.m, A.e - K - B.e, num % B.m !== 0n, rm, f);
}

function isqrt(n: bigint): bigint {
  if (n < 2n) return n;
  let x = 1n << BigInt(Math.ceil(bitlen(n) / 2));
  for (;;) {
    const y = (x + n / x) >> 1n;
    if (y >= x) return x;
    x = y;
  }
}

function refSqrt(a: bigint, rm: number, f: Fmt): Res {
  const A = decode(a, f);
  if (isNaNc(A)) return { bits: cnan(f), flags: A.cls === "snan" ? NV : 0 };
  if (A.cls === "zero") return { bits: a, flags: 0 };
  if (A.sign) return { bits: cnan(f), flags: NV };
  if (A.cls === "inf") return { bits: a, flags: 0 };
  let m = A.m, e = A.e;
  if (e & 1) { m <<= 1n; e -= 1; }
  const K = 240;
  m <<= BigInt(K);
  e -= K;
  const r = isqrt(m);
  return roundRef(0, r, e / 2, r * r !== m, rm, f);
}

function refFma(a: bigint, b: bigint, c: bigint, rm: number, f: Fmt): Res {
  const A = decode(a, f), B = decode(b, f), C = decode(c, f);
  const anyS = A.cls === "snan" || B.cls === "snan" || C.cls === "snan";
  if (isNaNc(A) || isNaNc(B)) return { bits: cnan(f), flags: anyS ? NV : 0 };
  const sp = A.sign ^ B.sign;
  if (A.cls === "inf" || B.cls === "inf") {
    if (A.cls === "zero" || B.cls === "zero") return { bits: cnan(f), flags: NV };
    if (isNaNc(C)) return { bits: cnan(f), flags: anyS ? NV : 0 };
    if (C.cls === "inf" && C.sign !== sp) return { bits: cnan(f), flags: NV };
    return { bits: (sp ? signBit(f) : 0n) | infBits(f), flags: 0 };
  }
  if (isNaNc(C)) return { bits: cnan(f), flags: anyS ? NV : 0 };
  if (C.cls === "inf") return { bits: c, flags: 0 };
  const pz = A.cls === "zero" || B.cls === "zero";
  if (pz && C.cls === "zero") return { bits: sp === C.sign ? c : rm === RDN ? signBit(f) : 0n, flags: 0 };
  if (pz) return { bits: c, flags: 0 };
  const pm = sp ? -(A.m * B.m) : A.m * B.m;
  const pe = A.e + B.e;
  if (C.cls === "zero") return exactResult(pm, pe, false, rm, f, 0);
  const e = Math.min(pe, C.e);
  const m = (pm << BigInt(pe - e)) + (sval(C) << BigInt(C.e - e));
  return exactResult(m, e, false, rm, f, rm === RDN ? 1 : 0);
}

// float -> int. kind 0 i32, 1 u32, 2 i64, 3 u64. Result as u64 (32-bit sign-extended).
function refToInt(a: bigint, rm: number, f: Fmt, kind: number): Res {
  const A = decode(a, f);
  const w = kind < 2 ? 32 : 64;
  const signed = kind === 0 || kind === 2;
  const max = signed ? (1n << BigInt(w - 1)) - 1n : (1n << BigInt(w)) - 1n;
  const min = signed ? -(1n << BigInt(w - 1)) : 0n;
  const enc = (v: bigint) => BigInt.asUintN(64, BigInt.asIntN(w, v));
  if (isNaNc(A)) return { bits: enc(max), flags: NV };
  if (A.cls === "inf") return { bits: enc(A.sign ? min : max), flags: NV };
  if (A.cls === "zero") return { bits: 0n, flags: 0 };
  let q: bigint, inx = false;
  if (A.e >= 0) q = A.m << BigInt(A.e);
  else ({ q, inx } = roundIntShift(A.m, -A.e, false, A.sign, rm));
  const v = A.sign ? -q : q;
  if (v > max) return { bits: enc(max), flags: NV };
  if (v < min) return { bits: enc(min), flags: NV };
  return { bits: enc(v), flags: inx ? NX : 0 };
}

function refFromInt(v: bigint, rm: number, f: Fmt): Res {
  return exactResult(v, 0, false, rm, f, 0);
}

function refCvt(a: bigint, rm: number, from: Fmt, to: Fmt): Res {
  const A = decode(a, from);
  if (isNaNc(A)) return { bits: cnan(to), flags: A.cls === "snan" ? NV : 0 };
  const sb = A.sign ? signBit(to) : 0n;
  if (A.cls === "inf") return { bits: sb | infBits(to), flags: 0 };
  if (A.cls === "zero") return { bits: sb, flags: 0 };
  return roundRef(A.sign, A.m, A.e, false, rm, to);
}

function orderedLess(a: Dec, b: Dec): boolean {
  const va = a.cls === "inf" ? (a.sign ? -Infinity : Infinity) : 0;
  const vb = b.cls === "inf" ? (b.sign ? -Infinity : Infinity) : 0;
  if (a.cls === "inf" || b.cls === "inf") {
    if (a.cls === "inf" && b.cls === "inf") return va < vb;
    if (a.cls === "inf") return a.sign === 1;
    return b.sign === 0;
  }
  // compare finite: m*2^e signed, with -0 < +0
  if (a.cls === "zero" && b.cls === "zero") return a.sign === 1 && b.sign === 0;
  const e = Math.min(a.cls === "zero" ? Infinity : a.e, b.cls === "zero" ? Infinity : b.e);
  const x = a.cls === "zero" ? 0n : sval(a) << BigInt(a.e - e);
  const y = b.cls === "zero" ? 0n : sval(b) << BigInt(b.e - e);
  return x < y;
}

function refMinMax(a: bigint, b: bigint, f: Fmt, isMax: boolean): Res {
  const A = decode(a, f), B = decode(b, f);
  const flags = A.cls === "snan" || B.cls === "snan" ? NV : 0;
  if (isNaNc(A) && isNaNc(B)) return { bits: cnan(f), flags };
  if (isNaNc(A)) return { bits: b, flags };
  if (isNaNc(B)) return { bits: a, flags };
  const less = orderedLess(A, B);
  return { bits: isMax ? (less ? b : a) : (less ? a : b), flags };
}

function refCmp(a: bigint, b: bigint, f: Fmt, op: "eq" | "lt" | "le"): Res {
  const A = decode(a, f), B = decode(b, f);
  if (isNaNc(A) || isNaNc(B)) {
    const nv = op === "eq" ? A.cls === "snan" || B.cls === "snan" : true;
    return { bits: 0n, flags: nv ? NV : 0 };
  }
  const bothZero = A.cls === "zero" && B.cls === "zero";
  const eq = bothZero || a === b;
  const lt = !eq && orderedLess(A, B);
  return { bits: BigInt(op === "eq" ? eq : op === "lt" ? lt : lt || eq), flags: 0 };
}

function refClass(a: bigint, f: Fmt): bigint {
  const A = decode(a, f);
  const sub = A.cls === "fin" && ((a >> BigInt(f.p - 1)) & BigInt((1 << f.ebits) - 1)) === 0n;
  switch (A.cls) {
    case "snan": return 1n << 8n;
    case "qnan": return 1n << 9n;
    case "inf": return A.sign ? 1n : 1n << 7n;
    case "zero": return A.sign ? 1n << 3n : 1n << 4n;
    default: return A.sign ? (sub ? 1n << 2n : 1n << 1n) : sub ? 1n << 5n : 1n << 6n;
  }
}

// ---------------------------------------------------------------------------
// Calling the module

const u32n = (x: bigint) => Number(BigInt.asUintN(32, x)) | 0; // pass as i32
const toBits = (f: Fmt, x: any): bigint => (f.w === 32 ? BigInt((x as number) >>> 0) : BigInt.asUintN(64, x as bigint));
const arg = (f: Fmt, x: bigint): any => (f.w === 32 ? u32n(x) : BigInt.asIntN(64, x));

function call(m: Mod, name: string, f: Fmt | null, args: any[], init = 0): Res {
  m.fflags.value = init;
  const r = m[name](...args);
  const bits = f ? toBits(f, r) : BigInt.asUintN(64, r as bigint);
  return { bits, flags: m.fflags.value };
}

// ---------------------------------------------------------------------------
// Random inputs

let seed = 0x12345678;
function rnd32(): number {
  // xorshift32
  seed ^= seed << 13; seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5; seed >>>= 0;
  return seed;
}
const rnd64 = () => (BigInt(rnd32()) << 32n) | BigInt(rnd32());
const rint = (n: number) => rnd32() % n;

function specials(f: Fmt): bigint[] {
  const sb = signBit(f), inf = infBits(f), fb = BigInt(f.p - 1);
  const one = BigInt(f.bias) << fb;
  const list = [0n, 1n, (1n << fb) - 1n, 1n << fb, inf - 1n, inf, inf | (1n << (fb - 1n)), inf | 1n, one, one | 1n,
    one - 1n, (BigInt(f.bias + 1) << fb), (1n << fb) + 1n, inf | ((1n << fb) - 1n)];
  return [...list, ...list.map((x) => x | sb)];
}

function randFloat(f: Fmt): bigint {
  const mask = (1n << BigInt(f.w)) - 1n;
  const fb = BigInt(f.p - 1);
  const fracMask = (1n << fb) - 1n;
  const r = rint(16);
  const s = rint(2) ? signBit(f) : 0n;
  const frac = rnd64() & fracMask;
  const sparse = () => { // few set bits
    let v = 0n;
    for (let i = rint(4); i >= 0; i--) v |= 1n << BigInt(rint(f.p - 1));
    return v & fracMask;
  };
  const maxE = (1 << f.ebits) - 1;
  switch (r) {
    case 0: { const sp = specials(f); return sp[rint(sp.length)]; }
    case 1: return rnd64() & mask;
    case 2: return s | (rnd64() & fracMask); // subnormal
    case 3: return s | (BigInt(1 + rint(4)) << fb) | frac; // small normal
    case 4: return s | (BigInt(maxE - 1 - rint(4)) << fb) | frac; // huge
    case 5: return s | (BigInt(f.bias - 8 + rint(16)) << fb) | sparse();
    case 6: return s | (BigInt(f.bias - 30 + rint(60)) << fb) | (fracMask - sparse());
    default: return s | (BigInt(f.bias - 20 + rint(40)) << fb) | frac;
  }
}

// b related to a (cancellation, ties, close exponents)
function related(f: Fmt, a: bigint): bigint {
  const fb = BigInt(f.p - 1);
  const r = rint(5);
  const maskAll = (1n << BigInt(f.w)) - 1n;
  if (r === 0) return a ^ signBit(f) ^ BigInt(rint(4)); // near negation
  if (r === 1) return (a + BigInt(rint(2 * f.p) - f.p) * (1n << fb)) & maskAll; // exponent offset
  if (r === 2) return (a ^ (1n << BigInt(rint(f.p - 1)))) ^ (rint(2) ? signBit(f) : 0n);
  if (r === 3) return ((a & (signBit(f) | (((1n << BigInt(f.ebits)) - 1n) << fb))) + (BigInt(f.p + 1 - rint(3)) << fb)) & maskAll;
  return randFloat(f);
}

function fmaC(f: Fmt, a: bigint, b: bigint): bigint {
  // c close to -(a*b) to provoke cancellation, or random
  if (rint(2)) return randFloat(f);
  const A = decode(a, f), B = decode(b, f);
  if (A.cls !== "fin" || B.cls !== "fin") return randFloat(f);
  const p = roundRef(A.sign ^ B.sign ^ 1, A.m * B.m, A.e + B.e, false, rint(5), f).bits;
  return (p + BigInt(rint(5)) - 2n) & ((1n << BigInt(f.w)) - 1n);
}

// ---------------------------------------------------------------------------
// Comparison driver

const hex = (x: bigint) => "0x" + x.toString(16);

function check(name: string, f: Fmt | null, args: any[], exp: Res, desc: string) {
  for (const [mn, m] of [["fast", fast], ["soft", soft]] as [string, Mod][]) {
    for (const init of [0, NX]) {
      const got = call(m, name, f, args, init);
      const ef = exp.flags | init;
      if (got.bits !== exp.bits || got.flags !== ef) {
        throw new Error(`${mn} ${name}(${desc}) init=${init}: got ${hex(got.bits)} flags ${got.flags}, want ${hex(exp.bits)} flags ${ef}`);
      }
    }
  }
}

const N = 2500;

for (const f of [F32, F64]) {
  const P = f.name;
  describe(`${P} random vs exact reference`, () => {
    it("add/sub", () => {
      for (let i = 0; i < N; i++) {
        const a = randFloat(f), b = rint(2) ? related(f, a) : randFloat(f);
        for (let rm = 0; rm < 5; rm++) {
          check(`${P}_add`, f, [arg(f, a), arg(f, b), rm], refAdd(a, b, rm, f), `${hex(a)},${hex(b)},${rm}`);
          check(`${P}_sub`, f, [arg(f, a), arg(f, b), rm], refAdd(a, b ^ signBit(f), rm, f), `${hex(a)},${hex(b)},${rm}`);
        }
      }
    });
    it("mul", () => {
      for (let i = 0; i < N; i++) {
        const a = randFloat(f), b = randFloat(f);
        for (let rm = 0; rm < 5; rm++) check(`${P}_mul`, f, [arg(f, a), arg(f, b), rm], refMul(a, b, rm, f), `${hex(a)},${hex(b)},${rm}`);
      }
    });
    it("div", () => {
      for (let i = 0; i < N; i++) {
        const a = randFloat(f), b = rint(3) ? randFloat(f) : related(f, a);
        for (let rm = 0; rm < 5; rm++) check(`${P}_div`, f, [arg(f, a), arg(f, b), rm], refDiv(a, b, rm, f), `${hex(a)},${hex(b)},${rm}`);
      }
    });
    it("sqrt", () => {
      for (let i = 0; i < N; i++) {
        let a = randFloat(f);
        if (rint(4) === 0) { // perfect squares
          const fl = f.w === 32 ? Math.fround(Math.fround(1 + rint(4096)) ** 2) : (1 + rint(1 << 26)) ** 2;
          a = f.w === 32 ? BigInt(new Uint32Array(new Float32Array([fl]).buffer)[0]) : new BigUint64Array(new Float64Array([fl]).buffer)[0];
        }
        for (let rm = 0; rm < 5; rm++) check(`${P}_sqrt`, f, [arg(f, a), rm], refSqrt(a, rm, f), `${hex(a)},${rm}`);
      }
    });
    it("muladd", () => {
      for (let i = 0; i < N; i++) {
        const a = randFloat(f), b = randFloat(f);
        const c = fmaC(f, a, b);
        for (let rm = 0; rm < 5; rm++) check(`${P}_muladd`, f, [arg(f, a), arg(f, b), arg(f, c), rm], refFma(a, b, c, rm, f), `${hex(a)},${hex(b)},${hex(c)},${rm}`);
      }
    });
    it("min/max/eq/lt/le/classify", () => {
      for (let i = 0; i < N; i++) {
        const a = randFloat(f), b = rint(2) ? related(f, a) : rint(2) ? a : randFloat(f);
        const d = `${hex(a)},${hex(b)}`;
        check(`${P}_min`, f, [arg(f, a), arg(f, b)], refMinMax(a, b, f, false), d);
        check(`${P}_max`, f, [arg(f, a), arg(f, b)], refMinMax(a, b, f, true), d);
        check(`${P}_eq`, null, [arg(f, a), arg(f, b)], refCmp(a, b, f, "eq"), d);
        check(`${P}_lt`, null, [arg(f, a), arg(f, b)], refCmp(a, b, f, "lt"), d);
        check(`${P}_le`, null, [arg(f, a), arg(f, b)], refCmp(a, b, f, "le"), d);
        check(`${P}_classify`, null, [arg(f, a)], { bits: refClass(a, f), flags: 0 }, d);
      }
    });
    it("float -> int", () => {
      const kinds = ["i32", "u32", "i64", "u64"];
      for (let i = 0; i < N; i++) {
        let a = randFloat(f);
        if (rint(2)) { // values around integers / range limits
          const lim = [0, 1, 31, 32, 63, 64][rint(6)];
          const v = (rint(2) ? -1 : 1) * (2 ** lim + (rint(9) - 4) * (lim > 20 ? 2 ** (lim - 20) : 0.25) + [0, 0.5, 0.25, 0.75, 1.5, -0.5][rint(6)]);
          a = f.w === 32 ? BigInt(new Uint32Array(new Float32Array([v]).buffer)[0]) : new BigUint64Array(new Float64Array([v]).buffer)[0];
        }
        for (let rm = 0; rm < 5; rm++) {
          for (let k = 0; k < 4; k++) {
            check(`${P}_to_${kinds[k]}`, null, [arg(f, a), rm], refToInt(a, rm, f, k), `${hex(a)},${rm}`);
          }
        }
      }
    });
    it("int -> float", () => {
      for (let i = 0; i < N; i++) {
        const bitsN = 1 + rint(64);
        let v = rnd64() & ((1n << BigInt(bitsN)) - 1n);
        if (rint(4) === 0) v |= 1n << BigInt(bitsN - 1);
        for (let rm = 0; rm < 5; rm++) {
          const i32 = BigInt.asIntN(32, v), u32 = BigInt.asUintN(32, v), i64 = BigInt.asIntN(64, v), u64 = BigInt.asUintN(64, v);
          check(`i32_to_${P}`, f, [Number(i32), rm], refFromInt(i32, rm, f), `${i32},${rm}`);
          check(`u32_to_${P}`, f, [Number(u32) | 0, rm], refFromInt(u32, rm, f), `${u32},${rm}`);
          check(`i64_to_${P}`, f, [i64, rm], refFromInt(i64, rm, f), `${i64},${rm}`);
          check(`u64_to_${P}`, f, [BigInt.asIntN(64, u64), rm], refFromInt(u64, rm, f), `${u64},${rm}`);
        }
      }
    });
  });
}

describe("f32 <-> f64", () => {
  it("random vs reference", () => {
    for (let i = 0; i < N; i++) {
      const a = randFloat(F32);
      check("f32_to_f64", F64, [arg(F32, a)], refCvt(a, RNE, F32, F64), hex(a));
      let d = randFloat(F64);
      if (rint(2)) d = (BigInt(1023 - 150 + rint(300)) << 52n) | (rnd64() & ((1n << 52n) - 1n)) | (rint(2) ? 1n << 63n : 0n);
      for (let rm = 0; rm < 5; rm++) check("f64_to_f32", F32, [arg(F64, d), rm], refCvt(d, rm, F64, F32), `${hex(d)},${rm}`);
    }
  });
});

// ---------------------------------------------------------------------------
// Host float comparison (RNE) and hand-written cases

const f64b = (x: number) => new BigUint64Array(new Float64Array([x]).buffer)[0];
const f32b = (x: number) => BigInt(new Uint32Array(new Float32Array([x]).buffer)[0]);
const b64f = (b: bigint) => new Float64Array(new BigUint64Array([b]).buffer)[0];
const b32f = (b: number) => new Float32Array(new Uint32Array([b >>> 0]).buffer)[0];

function rndDouble(): number {
  const e = rint(2) ? rint(80) - 40 : rint(2000) - 1000;
  return (rint(2) ? -1 : 1) * (rnd32() / 2 ** 32 + rnd32() / 2 ** 64 + 1) * 2 ** e;
}

describe("RNE vs host JS arithmetic", () => {
  it("f64 + - * / sqrt match JS", () => {
    for (const m of [fast, soft]) {
      for (let i = 0; i < 20000; i++) {
        const x = rndDouble(), y = rndDouble();
        m.fflags.value = 0;
        const X = BigInt.asIntN(64, f64b(x)), Y = BigInt.asIntN(64, f64b(y));
        expect(b64f(BigInt.asUintN(64, m.f64_add(X, Y, 0)))).toBe(x + y);
        expect(b64f(BigInt.asUintN(64, m.f64_sub(X, Y, 0)))).toBe(x - y);
        expect(b64f(BigInt.asUintN(64, m.f64_mul(X, Y, 0)))).toBe(x * y);
        expect(b64f(BigInt.asUintN(64, m.f64_div(X, Y, 0)))).toBe(x / y);
        const s = Math.sqrt(Math.abs(x));
        expect(b64f(BigInt.asUintN(64, m.f64_sqrt(BigInt.asIntN(64, f64b(Math.abs(x))), 0)))).toBe(s);
      }
    }
  });
  it("f32 + - * / sqrt match Math.fround", () => {
    for (const m of [fast, soft]) {
      for (let i = 0; i < 20000; i++) {
        const x = Math.fround(rndDouble() / 2 ** 900), y = Math.fround(rndDouble() / 2 ** 900);
        m.fflags.value = 0;
        const X = Number(f32b(x)) | 0, Y = Number(f32b(y)) | 0;
        expect(b32f(m.f32_add(X, Y, 0))).toBe(Math.fround(x + y));
        expect(b32f(m.f32_sub(X, Y, 0))).toBe(Math.fround(x - y));
        expect(b32f(m.f32_mul(X, Y, 0))).toBe(Math.fround(x * y));
        expect(b32f(m.f32_div(X, Y, 0))).toBe(Math.fround(x / y));
        expect(b32f(m.f32_sqrt(Number(f32b(Math.abs(x))) | 0, 0))).toBe(Math.fround(Math.sqrt(Math.abs(x))));
      }
    }
  });
});

describe("hand-written cases", () => {
  const D = (x: number) => f64b(x);
  const S = (x: number) => f32b(x);
  const d3 = (name: string, a: number, b: number, rm: number, want: bigint, flags: number) =>
    check(name, F64, [arg(F64, D(a)), arg(F64, D(b)), rm], { bits: want, flags }, `${a},${b},${rm}`);

  it("1/3 in all rounding modes", () => {
    const lo = 0x3fd5555555555555n, hi = 0x3fd5555555555556n;
    d3("f64_div", 1, 3, RNE, lo, NX);
    d3("f64_div", 1, 3, RTZ, lo, NX);
    d3("f64_div", 1, 3, RDN, lo, NX);
    d3("f64_div", 1, 3, RUP, hi, NX);
    d3("f64_div", 1, 3, RMM, lo, NX);
    d3("f64_div", -1, 3, RDN, hi | (1n << 63n), NX);
    d3("f64_div", -1, 3, RUP, lo | (1n << 63n), NX);
    check("f32_div", F32, [arg(F32, S(1)), arg(F32, S(3)), RUP], { bits: 0x3eaaaaabn, flags: NX }, "1/3 f32 RUP");
    check("f32_div", F32, [arg(F32, S(1)), arg(F32, S(3)), RTZ], { bits: 0x3eaaaaaan, flags: NX }, "1/3 f32 RTZ");
  });

  it("ties: RNE to even, RMM away", () => {
    // 1 + 2^-53 is a tie between 1 and 1+2^-52
    d3("f64_add", 1, 2 ** -53, RNE, D(1), NX);
    d3("f64_add", 1, 2 ** -53, RMM, D(1 + 2 ** -52), NX);
    d3("f64_add", 1 + 2 ** -52, 2 ** -53, RNE, D(1 + 2 ** -51), NX);
    d3("f64_add", -1, -(2 ** -53), RMM, D(-(1 + 2 ** -52)), NX);
    d3("f64_add", -1, -(2 ** -53), RDN, D(-(1 + 2 ** -52)), NX);
    d3("f64_add", -1, -(2 ** -53), RUP, D(-1), NX);
  });

  it("signed zeros", () => {
    d3("f64_sub", 1.5, 1.5, RDN, 1n << 63n, 0);
    d3("f64_sub", 1.5, 1.5, RNE, 0n, 0);
    d3("f64_add", -0, -0, RNE, 1n << 63n, 0);
    d3("f64_add", -0, 0, RNE, 0n, 0);
    d3("f64_add", -0, 0, RDN, 1n << 63n, 0);
    d3("f64_mul", -0, 5, RNE, 1n << 63n, 0);
    check("f32_sub", F32, [arg(F32, S(2)), arg(F32, S(2)), RDN], { bits: 0x80000000n, flags: 0 }, "f32 x-x RDN");
    check("f64_sqrt", F64, [arg(F64, D(-0)), RNE], { bits: 1n << 63n, flags: 0 }, "sqrt -0");
  });

  it("overflow in each rounding mode", () => {
    const max = 0x7fefffffffffffffn, inf = 0x7ff0000000000000n, s = 1n << 63n;
    const big = b64f(max);
    d3("f64_mul", big, 2, RNE, inf, OF | NX);
    d3("f64_mul", big, 2, RTZ, max, OF | NX);
    d3("f64_mul", big, 2, RDN, max, OF | NX);
    d3("f64_mul", big, 2, RUP, inf, OF | NX);
    d3("f64_mul", big, 2, RMM, inf, OF | NX);
    d3("f64_mul", -big, 2, RDN, inf | s, OF | NX);
    d3("f64_mul", -big, 2, RUP, max | s, OF | NX);
    d3("f64_mul", -big, 2, RTZ, max | s, OF | NX);
    d3("f64_add", big, big, RNE, inf, OF | NX);
    check("f32_mul", F32, [arg(F32, 0x7f7fffffn), arg(F32, S(2)), RTZ], { bits: 0x7f7fffffn, flags: OF | NX }, "f32 ovf");
    check("f64_to_f32", F32, [arg(F64, D(1e300)), RNE], { bits: 0x7f800000n, flags: OF | NX }, "narrow ovf");
    check("f64_to_f32", F32, [arg(F64, D(-1e300)), RUP], { bits: 0xff7fffffn, flags: OF | NX }, "narrow ovf RUP");
  });

  it("underflow: tininess after rounding, subnormals", () => {
    const minN = 2 ** -1022;
    // exact subnormal result: no flags
    d3("f64_mul", minN, 0.5, RNE, 0x0008000000000000n, 0);
    // (1 - 2^-53) * minN is exact at p=53 but below minN: tiny; on the subnormal grid it is a tie -> minN
    d3("f64_mul", 1 - 2 ** -53, minN, RNE, D(minN), UF | NX);
    // (1 + 2^-52) * maxSubnormal = minN * (1 - 2^-104): rounds to minN even with unbounded exponent -> not tiny
    const maxSub = b64f(0x000fffffffffffffn);
    d3("f64_mul", 1 + 2 ** -52, maxSub, RNE, D(minN), NX);
    d3("f64_mul", 1 + 2 ** -52, maxSub, RTZ, 0x000fffffffffffffn, UF | NX);
    d3("f64_mul", 1 + 2 ** -52, maxSub, RUP, D(minN), NX);
    // smallest subnormal * 0.5: tie to even -> 0, UF|NX
    d3("f64_mul", 2 ** -1074, 0.5, RNE, 0n, UF | NX);
    d3("f64_mul", 2 ** -1074, 0.5, RUP, 1n, UF | NX);
    d3("f64_mul", 2 ** -1074, -0.5, RDN, 1n | (1n << 63n), UF | NX);
    d3("f64_mul", 2 ** -1074, 0.75, RNE, 1n, UF | NX);
    check("f32_mul", F32, [arg(F32, 1n), arg(F32, S(0.5)), RNE], { bits: 0n, flags: UF | NX }, "f32 min sub /2");
    // subnormal inputs
    d3("f64_add", 2 ** -1074, 2 ** -1074, RNE, 2n, 0);
    d3("f64_div", 2 ** -1074, 2 ** -1074, RNE, D(1), 0);
  });

  it("fma is fused (single rounding)", () => {
    // a*b = 1 - 2^-60 exactly; round(a*b) = 1, so non-fused gives 0
    const a = 1 + 2 ** -30, b = 1 - 2 ** -30;
    check("f64_muladd", F64, [arg(F64, D(a)), arg(F64, D(b)), arg(F64, D(-1)), RNE], { bits: D(-(2 ** -60)), flags: 0 }, "fused");
    const fa = 1 + 2 ** -12, fb = 1 - 2 ** -12;
    check("f32_muladd", F32, [arg(F32, S(fa)), arg(F32, S(fb)), arg(F32, S(-1)), RNE], { bits: S(-(2 ** -24)), flags: 0 }, "fused f32");
    // inf*0 + qNaN raises NV
    check("f64_muladd", F64, [arg(F64, D(Infinity)), arg(F64, 0n), arg(F64, 0x7ff8000000000000n), RNE], { bits: 0x7ff8000000000000n, flags: NV }, "inf*0+qnan");
    // qNaN * 0 + 1: no NV
    check("f64_muladd", F64, [arg(F64, 0x7ff8000000000001n), arg(F64, 0n), arg(F64, D(1)), RNE], { bits: 0x7ff8000000000000n, flags: 0 }, "qnan*0+1");
    // inf*1 + -inf invalid
    check("f64_muladd", F64, [arg(F64, D(Infinity)), arg(F64, D(1)), arg(F64, D(-Infinity)), RNE], { bits: 0x7ff8000000000000n, flags: NV }, "inf-inf");
    // exact zero: (+x)(-y) + xy -> +0 (RNE), -0 (RDN)
    check("f64_muladd", F64, [arg(F64, D(3)), arg(F64, D(-5)), arg(F64, D(15)), RNE], { bits: 0n, flags: 0 }, "zero");
    check("f64_muladd", F64, [arg(F64, D(3)), arg(F64, D(-5)), arg(F64, D(15)), RDN], { bits: 1n << 63n, flags: 0 }, "zero rdn");
  });

  it("NaN handling: canonical NaN, sNaN -> NV, min/max, compares", () => {
    const sN = 0x7ff0000000000001n, qN = 0x7ff8000000000123n, C = 0x7ff8000000000000n;
    check("f64_add", F64, [arg(F64, qN), arg(F64, D(1)), RNE], { bits: C, flags: 0 }, "qnan+1");
    check("f64_add", F64, [arg(F64, sN), arg(F64, D(1)), RNE], { bits: C, flags: NV }, "snan+1");
    check("f64_add", F64, [arg(F64, D(Infinity)), arg(F64, D(-Infinity)), RNE], { bits: C, flags: NV }, "inf-inf");
    check("f64_mul", F64, [arg(F64, D(Infinity)), arg(F64, 0n), RNE], { bits: C, flags: NV }, "inf*0");
    check("f64_div", F64, [arg(F64, 0n), arg(F64, 0n), RNE], { bits: C, flags: NV }, "0/0");
    check("f64_div", F64, [arg(F64, D(1)), arg(F64, 1n << 63n), RNE], { bits: 0xfff0000000000000n, flags: DZ }, "1/-0");
    check("f64_sqrt", F64, [arg(F64, D(-1)), RNE], { bits: C, flags: NV }, "sqrt -1");
    // exact special quotients raise nothing
    for (const [x, y, z] of [[0x00000000n, 0xff800000n, 0x80000000n], [0x80000000n, 0x7f800000n, 0x80000000n], [0x3f800000n, 0x7f800000n, 0n]]) {
      check("f32_div", F32, [arg(F32, x), arg(F32, y), RNE], { bits: z, flags: 0 }, `f32 ${hex(x)}/${hex(y)}`);
      check("f64_div", F64, [arg(F64, refCvt(x, RNE, F32, F64).bits), arg(F64, refCvt(y, RNE, F32, F64).bits), RNE], { bits: refCvt(z, RNE, F32, F64).bits, flags: 0 }, `f64 ${hex(x)}/${hex(y)}`);
    }
    check("f64_min", F64, [arg(F64, qN), arg(F64, D(2))], { bits: D(2), flags: 0 }, "min qnan");
    check("f64_max", F64, [arg(F64, sN), arg(F64, D(2))], { bits: D(2), flags: NV }, "max snan");
    check("f64_max", F64, [arg(F64, qN), arg(F64, qN)], { bits: C, flags: 0 }, "max nan nan");
    check("f64_min", F64, [arg(F64, 0n), arg(F64, 1n << 63n)], { bits: 1n << 63n, flags: 0 }, "min 0 -0");
    check("f64_max", F64, [arg(F64, 1n << 63n), arg(F64, 0n)], { bits: 0n, flags: 0 }, "max -0 0");
    check("f32_min", F32, [arg(F32, 0x7fc00001n), arg(F32, 0x7f800001n)], { bits: 0x7fc00000n, flags: NV }, "f32 min nans");
    check("f64_eq", null, [arg(F64, qN), arg(F64, qN)], { bits: 0n, flags: 0 }, "eq qnan");
    check("f64_eq", null, [arg(F64, sN), arg(F64, D(1))], { bits: 0n, flags: NV }, "eq snan");
    check("f64_lt", null, [arg(F64, qN), arg(F64, D(1))], { bits: 0n, flags: NV }, "lt qnan");
    check("f64_le", null, [arg(F64, D(1)), arg(F64, qN)], { bits: 0n, flags: NV }, "le qnan");
    check("f64_eq", null, [arg(F64, 0n), arg(F64, 1n << 63n)], { bits: 1n, flags: 0 }, "eq 0 -0");
    check("f64_lt", null, [arg(F64, 1n << 63n), arg(F64, 0n)], { bits: 0n, flags: 0 }, "lt -0 0");
    check("f64_le", null, [arg(F64, 1n << 63n), arg(F64, 0n)], { bits: 1n, flags: 0 }, "le -0 0");
    check("f32_to_f64", F64, [arg(F32, 0x7f800001n)], { bits: C, flags: NV }, "widen snan");
    check("f64_to_f32", F32, [arg(F64, qN), RNE], { bits: 0x7fc00000n, flags: 0 }, "narrow qnan");
  });

  it("classify", () => {
    const cases: [bigint, bigint][] = [
      [0xfff0000000000000n, 1n], [D(-1), 2n], [0x800fffffffffffffn, 4n], [1n << 63n, 8n], [0n, 16n],
      [1n, 32n], [D(1), 64n], [0x7ff0000000000000n, 128n], [0x7ff0000000000001n, 256n], [0x7ff8000000000000n, 512n],
    ];
    for (const [x, w] of cases) check("f64_classify", null, [arg(F64, x)], { bits: w, flags: 0 }, hex(x));
    check("f32_classify", null, [arg(F32, 0x7fa00000n)], { bits: 256n, flags: 0 }, "f32 snan");
    check("f32_classify", null, [arg(F32, 0x80000001n)], { bits: 4n, flags: 0 }, "f32 -sub");
  });

  it("float -> int saturation", () => {
    const cv = (name: string, x: number, rm: number, want: bigint, flags: number) =>
      check(name, null, [name.startsWith("f32") ? arg(F32, S(x)) : arg(F64, D(x)), rm], { bits: BigInt.asUintN(64, want), flags }, `${x},${rm}`);
    cv("f64_to_i32", NaN, RNE, 0x7fffffffn, NV);
    cv("f64_to_i32", Infinity, RNE, 0x7fffffffn, NV);
    cv("f64_to_i32", -Infinity, RNE, -0x80000000n, NV);
    cv("f64_to_i32", 2147483647.5, RNE, 0x7fffffffn, NV);
    cv("f64_to_i32", 2147483647.5, RTZ, 0x7fffffffn, NX);
    cv("f64_to_i32", -2147483648.9, RTZ, -0x80000000n, NX);
    cv("f64_to_i32", -2147483648.9, RNE, -0x80000000n, NV);
    cv("f64_to_i32", -1.5, RNE, -2n, NX);
    cv("f64_to_i32", 2.5, RNE, 2n, NX);
    cv("f64_to_i32", 2.5, RMM, 3n, NX);
    cv("f64_to_i32", -2.5, RMM, -3n, NX);
    cv("f64_to_u32", NaN, RNE, -1n, NV);
    cv("f64_to_u32", 4294967296, RNE, -1n, NV);
    cv("f64_to_u32", 4294967295, RNE, -1n, 0); // 0xffffffff sign-extended
    cv("f64_to_u32", 3000000000, RNE, BigInt.asIntN(32, 3000000000n), 0);
    cv("f64_to_u32", -1, RNE, 0n, NV);
    cv("f64_to_u32", -0.4, RNE, 0n, NX);
    cv("f64_to_u32", -0.6, RNE, 0n, NV);
    cv("f64_to_u32", -0.6, RTZ, 0n, NX);
    cv("f64_to_u32", -Infinity, RTZ, 0n, NV);
    cv("f64_to_i64", 2 ** 63, RNE, 0x7fffffffffffffffn, NV);
    cv("f64_to_i64", -(2 ** 63), RNE, -(2n ** 63n), 0);
    cv("f64_to_i64", NaN, RNE, 0x7fffffffffffffffn, NV);
    cv("f64_to_u64", 2 ** 64, RNE, -1n, NV);
    cv("f64_to_u64", 2 ** 63, RNE, 2n ** 63n, 0);
    cv("f64_to_u64", -0.9, RUP, 0n, NX);
    cv("f64_to_u64", -3, RUP, 0n, NV);
    cv("f32_to_i32", -0.5, RDN, -1n, NX);
    cv("f32_to_u64", NaN, RNE, -1n, NV);
  });

  it("int -> float rounding", () => {
    const big = (1n << 62n) + 1n; // not representable in f64/f32
    check("i64_to_f64", F64, [big, RNE], { bits: D(2 ** 62), flags: NX }, "2^62+1");
    check("i64_to_f64", F64, [big, RUP], { bits: D(2 ** 62) + 1n, flags: NX }, "2^62+1 rup");
    check("u64_to_f64", F64, [-1n, RTZ], { bits: D(2 ** 64) - 1n, flags: NX }, "u64 max rtz");
    check("u64_to_f64", F64, [-1n, RNE], { bits: D(2 ** 64), flags: NX }, "u64 max rne");
    check("i32_to_f32", F32, [16777217, RNE], { bits: S(16777216), flags: NX }, "2^24+1");
    check("i32_to_f32", F32, [16777217, RUP], { bits: S(16777218), flags: NX }, "2^24+1 rup");
    check("i32_to_f32", F32, [-2147483648, RNE], { bits: S(-(2 ** 31)), flags: 0 }, "i32 min");
    check("i64_to_f64", F64, [-(1n << 63n), RNE], { bits: D(-(2 ** 63)), flags: 0 }, "i64 min");
  });
});
