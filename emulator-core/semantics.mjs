// The one source of the integer instructions' semantics: RV64I register-register, register-immediate and W forms,
// LUI, AUIPC, the M extension and the six branch conditions. semantics-gen.mjs (run by build.mjs) turns this
// table into assembly/semantics.ts (@inline functions the interpreter's cases call) and src/jit/semantics.ts
// (emitters that append the same computation to a wasm function the JIT builds), so the two tiers cannot drift.
//
// The language: folded WebAssembly text (as in .wat) over 64-bit values, with a few forms of its own.
//   rs1 rs2        the source registers' values (i64)
//   imm            the decoded immediate, sign-extended to i64 (shift amounts are 0..63; LUI's is already << 12)
//   pc             the address of the instruction (i64)
//   (i64.const N) (i32.const N)                 constants (decimal, or hex with 0x; negative decimal allowed)
//   (i64.add a b) (i32.wrap_i64 a) ...          a wasm numeric instruction and its operands, in wasm's order and
//                                               with wasm's meaning (shifts take the count modulo the width; a
//                                               comparison gives an i32 0 or 1). The instructions the generator
//                                               knows are listed in semantics-gen.mjs (WASM_OPS); div_s and
//                                               div_u trap in wasm on a zero divisor and div_s on overflow, so an
//                                               expression must keep them from being reached with those (below).
//   (if T c a b)   a when the i32 c is non-zero, else b, with T (i64 or i32) their type; only the chosen arm is
//                  evaluated, unlike wasm's select
//   (let ((x e) (y e2) ...) body)   names values, each binding seeing the earlier ones (only at the start of an
//                  op's or helper's body, so that the interpreter's version stays a plain function)
//   (call h a b)   a helper of HELPERS, with its arguments
//
// Each VALUE_OPS entry is an op of assembly/ops.ts (without OP_) and the i64 it writes to rd; each BRANCH_CONDS
// entry is the i32 condition under which the branch is taken. A value's writer never sees x0: the decoder sends
// writes to x0 to a scratch register, and a source register x0 reads as 0.

/** Helpers: functions of the language, called with (call name args...). */
export const HELPERS = {
  // High 64 bits of the unsigned 128-bit product: wasm has no wide multiply, so four 32x32 products.
  mulhu: {
    params: ["a", "b"],
    body: `
      (let ((aLo (i64.and a (i64.const 0xffffffff)))
            (aHi (i64.shr_u a (i64.const 32)))
            (bLo (i64.and b (i64.const 0xffffffff)))
            (bHi (i64.shr_u b (i64.const 32)))
            (ll (i64.mul aLo bLo))
            (lh (i64.mul aLo bHi))
            (hl (i64.mul aHi bLo))
            (hh (i64.mul aHi bHi))
            (mid (i64.add (i64.add (i64.shr_u ll (i64.const 32)) (i64.and lh (i64.const 0xffffffff)))
                          (i64.and hl (i64.const 0xffffffff)))))
        (i64.add (i64.add (i64.add hh (i64.shr_u lh (i64.const 32))) (i64.shr_u hl (i64.const 32)))
                 (i64.shr_u mid (i64.const 32))))`,
  },
  // Signed operands: the unsigned product's high half, less b for a negative a and a for a negative b
  // (a >> 63, arithmetic, is all ones exactly when a is negative).
  mulh: {
    params: ["a", "b"],
    body: `
      (i64.sub (i64.sub (call mulhu a b)
                        (i64.and (i64.shr_s a (i64.const 63)) b))
               (i64.and (i64.shr_s b (i64.const 63)) a))`,
  },
  mulhsu: {
    params: ["a", "b"],
    body: `(i64.sub (call mulhu a b) (i64.and (i64.shr_s a (i64.const 63)) b))`,
  },
};

/** Ops that write rd: the value written. */
export const VALUE_OPS = {
  LUI: `imm`,
  AUIPC: `(i64.add pc imm)`,

  ADDI: `(i64.add rs1 imm)`,
  SLTI: `(i64.extend_i32_u (i64.lt_s rs1 imm))`,
  SLTIU: `(i64.extend_i32_u (i64.lt_u rs1 imm))`,
  XORI: `(i64.xor rs1 imm)`,
  ORI: `(i64.or rs1 imm)`,
  ANDI: `(i64.and rs1 imm)`,
  SLLI: `(i64.shl rs1 imm)`,
  SRLI: `(i64.shr_u rs1 imm)`,
  SRAI: `(i64.shr_s rs1 imm)`,

  ADD: `(i64.add rs1 rs2)`,
  SUB: `(i64.sub rs1 rs2)`,
  SLL: `(i64.shl rs1 (i64.and rs2 (i64.const 63)))`,
  SLT: `(i64.extend_i32_u (i64.lt_s rs1 rs2))`,
  SLTU: `(i64.extend_i32_u (i64.lt_u rs1 rs2))`,
  XOR: `(i64.xor rs1 rs2)`,
  SRL: `(i64.shr_u rs1 (i64.and rs2 (i64.const 63)))`,
  SRA: `(i64.shr_s rs1 (i64.and rs2 (i64.const 63)))`,
  OR: `(i64.or rs1 rs2)`,
  AND: `(i64.and rs1 rs2)`,

  // W forms: compute on the low 32 bits, sign-extend the 32-bit result
  ADDIW: `(i64.extend_i32_s (i32.wrap_i64 (i64.add rs1 imm)))`,
  SLLIW: `(i64.extend_i32_s (i32.shl (i32.wrap_i64 rs1) (i32.wrap_i64 imm)))`,
  SRLIW: `(i64.extend_i32_s (i32.shr_u (i32.wrap_i64 rs1) (i32.wrap_i64 imm)))`,
  SRAIW: `(i64.extend_i32_s (i32.shr_s (i32.wrap_i64 rs1) (i32.wrap_i64 imm)))`,
  ADDW: `(i64.extend_i32_s (i32.wrap_i64 (i64.add rs1 rs2)))`,
  SUBW: `(i64.extend_i32_s (i32.wrap_i64 (i64.sub rs1 rs2)))`,
  SLLW: `(i64.extend_i32_s (i32.shl (i32.wrap_i64 rs1) (i32.and (i32.wrap_i64 rs2) (i32.const 31))))`,
  SRLW: `(i64.extend_i32_s (i32.shr_u (i32.wrap_i64 rs1) (i32.and (i32.wrap_i64 rs2) (i32.const 31))))`,
  SRAW: `(i64.extend_i32_s (i32.shr_s (i32.wrap_i64 rs1) (i32.and (i32.wrap_i64 rs2) (i32.const 31))))`,

  // M. Division by zero gives all ones (quotient) or the dividend (remainder); the one signed overflow,
  // INT_MIN / -1, gives INT_MIN and remainder 0. Wasm's div_s would trap on both, so they are tested first;
  // x / -1 is computed as 0 - x, which is INT_MIN for INT_MIN.
  MUL: `(i64.mul rs1 rs2)`,
  MULH: `(call mulh rs1 rs2)`,
  MULHSU: `(call mulhsu rs1 rs2)`,
  MULHU: `(call mulhu rs1 rs2)`,
  DIV: `(if i64 (i64.eqz rs2) (i64.const -1)
          (if i64 (i64.eq rs2 (i64.const -1)) (i64.sub (i64.const 0) rs1) (i64.div_s rs1 rs2)))`,
  DIVU: `(if i64 (i64.eqz rs2) (i64.const -1) (i64.div_u rs1 rs2))`,
  REM: `(if i64 (i64.eqz rs2) rs1
          (if i64 (i64.eq rs2 (i64.const -1)) (i64.const 0) (i64.rem_s rs1 rs2)))`,
  REMU: `(if i64 (i64.eqz rs2) rs1 (i64.rem_u rs1 rs2))`,
  MULW: `(i64.extend_i32_s (i32.wrap_i64 (i64.mul rs1 rs2)))`,
  DIVW: `
    (let ((a (i32.wrap_i64 rs1)) (b (i32.wrap_i64 rs2)))
      (i64.extend_i32_s (if i32 (i32.eqz b) (i32.const -1)
                          (if i32 (i32.eq b (i32.const -1)) (i32.sub (i32.const 0) a) (i32.div_s a b)))))`,
  DIVUW: `
    (let ((a (i32.wrap_i64 rs1)) (b (i32.wrap_i64 rs2)))
      (i64.extend_i32_s (if i32 (i32.eqz b) (i32.const -1) (i32.div_u a b))))`,
  REMW: `
    (let ((a (i32.wrap_i64 rs1)) (b (i32.wrap_i64 rs2)))
      (i64.extend_i32_s (if i32 (i32.eqz b) a
                          (if i32 (i32.eq b (i32.const -1)) (i32.const 0) (i32.rem_s a b)))))`,
  REMUW: `
    (let ((a (i32.wrap_i64 rs1)) (b (i32.wrap_i64 rs2)))
      (i64.extend_i32_s (if i32 (i32.eqz b) a (i32.rem_u a b))))`,
};

/** Conditional branches: taken when the condition is non-zero. */
export const BRANCH_CONDS = {
  BEQ: `(i64.eq rs1 rs2)`,
  BNE: `(i64.ne rs1 rs2)`,
  BLT: `(i64.lt_s rs1 rs2)`,
  BGE: `(i64.ge_s rs1 rs2)`,
  BLTU: `(i64.lt_u rs1 rs2)`,
  BGEU: `(i64.ge_u rs1 rs2)`,
};
