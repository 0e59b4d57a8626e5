// The decoder: instruction bits -> a 16-byte decoded entry the interpreter dispatches on.
//
// Decoding happens once per instruction location (the result is cached per physical page, see icache.ts), so it
// favours clarity over speed: the 32-bit encodings are declared as data, a table of (mask, match, op, format)
// rows searched in order, the way the ISA manual's opcode map lists them. Compressed (C) instructions are
// expanded to the base op they stand for; their irregular immediate layouts are spelled out in expandCompressed.

import * as O from "./ops";

// Decoded entry layout (ENTRY_SIZE bytes). Register fields hold byte offsets into the register file (reg * 8),
// so a handler adds them to the file's base without shifting. rs3 and the rounding mode of FP ops are read from
// the raw bits, which only the (cold) FP path needs.
export const ENTRY_SIZE: u32 = 16;
export const E_OP: u32 = 0;     // u8 operation id (ops.ts)
export const E_LEN: u32 = 1;    // u8 instruction length in bytes: 2 or 4
export const E_RD: u32 = 2;     // u16 destination register * 8; an integer rd of x0 is stored as the scratch slot
                                //     (32 * 8), so handlers write unconditionally and x0 stays zero
export const E_RS1: u32 = 4;    // u16 source register * 8
export const E_RS2: u32 = 6;    // u16 source register * 8
export const E_IMM: u32 = 8;    // i32 immediate (the CSR number for Zicsr ops)
export const E_RAW: u32 = 12;   // u32 the instruction bits (mtval of an illegal instruction; FP rs3 and rm)

export const X_SCRATCH: u8 = 32;

// Operand formats of the table rows.
const F_R: u32 = 0;      // rd, rs1, rs2
const F_I: u32 = 1;      // rd, rs1, imm[11:0]
const F_S: u32 = 2;      // rs1, rs2, store offset
const F_B: u32 = 3;      // rs1, rs2, branch offset
const F_U: u32 = 4;      // rd, imm[31:12]
const F_J: u32 = 5;      // rd, jump offset
const F_SH6: u32 = 6;    // rd, rs1, shamt[5:0]
const F_SH5: u32 = 7;    // rd, rs1, shamt[4:0]
const F_CSR: u32 = 8;    // rd, rs1/uimm, csr
const F_R4: u32 = 9;     // rd, rs1, rs2, rs3, rm
const F_RM: u32 = 10;    // rd, rs1, rs2, rm
const F_NONE: u32 = 11;

// Masks of the common encoding shapes.
const M_OPC: u32 = 0x0000007f;        // opcode only
const M_F3: u32 = 0x0000707f;         // opcode + funct3
const M_F7: u32 = 0xfe00707f;         // opcode + funct3 + funct7
const M_SH6: u32 = 0xfc00707f;        // RV64 shift immediates: funct6
const M_AMO: u32 = 0xf800707f;        // funct5 + funct3 (aq/rl ignored)
const M_LR: u32 = 0xf9f0707f;         // LR: rs2 must be 0
const M_FP: u32 = 0xfe00007f;         // funct7 (rm free)
const M_FP_RS2: u32 = 0xfff0007f;     // funct7 + rs2 (rm free)
const M_FP_F3: u32 = 0xfe00707f;      // funct7 + funct3
const M_FP_RS2_F3: u32 = 0xfff0707f;  // funct7 + rs2 + funct3
const M_R4: u32 = 0x0600007f;         // opcode + fmt
const M_ALL: u32 = 0xffffffff;

@inline function f3(v: u32): u32 { return v << 12; }
@inline function f7(v: u32): u32 { return v << 25; }
@inline function r2(v: u32): u32 { return v << 20; }
@inline function f5(v: u32): u32 { return v << 27; }

// prettier-ignore
const TABLE: StaticArray<u32> = [
  // mask, match, op, format
  M_OPC, 0x37, O.OP_LUI, F_U,
  M_OPC, 0x17, O.OP_AUIPC, F_U,
  M_OPC, 0x6f, O.OP_JAL, F_J,
  M_F3, 0x67, O.OP_JALR, F_I,
  M_F3, 0x63 | f3(0), O.OP_BEQ, F_B,
  M_F3, 0x63 | f3(1), O.OP_BNE, F_B,
  M_F3, 0x63 | f3(4), O.OP_BLT, F_B,
  M_F3, 0x63 | f3(5), O.OP_BGE, F_B,
  M_F3, 0x63 | f3(6), O.OP_BLTU, F_B,
  M_F3, 0x63 | f3(7), O.OP_BGEU, F_B,
  M_F3, 0x03 | f3(0), O.OP_LB, F_I,
  M_F3, 0x03 | f3(1), O.OP_LH, F_I,
  M_F3, 0x03 | f3(2), O.OP_LW, F_I,
  M_F3, 0x03 | f3(3), O.OP_LD, F_I,
  M_F3, 0x03 | f3(4), O.OP_LBU, F_I,
  M_F3, 0x03 | f3(5), O.OP_LHU, F_I,
  M_F3, 0x03 | f3(6), O.OP_LWU, F_I,
  M_F3, 0x23 | f3(0), O.OP_SB, F_S,
  M_F3, 0x23 | f3(1), O.OP_SH, F_S,
  M_F3, 0x23 | f3(2), O.OP_SW, F_S,
  M_F3, 0x23 | f3(3), O.OP_SD, F_S,
  M_F3, 0x13 | f3(0), O.OP_ADDI, F_I,
  M_F3, 0x13 | f3(2), O.OP_SLTI, F_I,
  M_F3, 0x13 | f3(3), O.OP_SLTIU, F_I,
  M_F3, 0x13 | f3(4), O.OP_XORI, F_I,
  M_F3, 0x13 | f3(6), O.OP_ORI, F_I,
  M_F3, 0x13 | f3(7), O.OP_ANDI, F_I,
  M_SH6, 0x13 | f3(1), O.OP_SLLI, F_SH6,
  M_SH6, 0x13 | f3(5), O.OP_SRLI, F_SH6,
  M_SH6, 0x13 | f3(5) | (0x10 << 26), O.OP_SRAI, F_SH6,
  M_F7, 0x33 | f3(0), O.OP_ADD, F_R,
  M_F7, 0x33 | f3(0) | f7(0x20), O.OP_SUB, F_R,
  M_F7, 0x33 | f3(1), O.OP_SLL, F_R,
  M_F7, 0x33 | f3(2), O.OP_SLT, F_R,
  M_F7, 0x33 | f3(3), O.OP_SLTU, F_R,
  M_F7, 0x33 | f3(4), O.OP_XOR, F_R,
  M_F7, 0x33 | f3(5), O.OP_SRL, F_R,
  M_F7, 0x33 | f3(5) | f7(0x20), O.OP_SRA, F_R,
  M_F7, 0x33 | f3(6), O.OP_OR, F_R,
  M_F7, 0x33 | f3(7), O.OP_AND, F_R,
  M_F3, 0x0f | f3(0), O.OP_FENCE, F_NONE,
  M_F3, 0x0f | f3(1), O.OP_FENCE_I, F_NONE,
  M_ALL, 0x00000073, O.OP_ECALL, F_NONE,
  M_ALL, 0x00100073, O.OP_EBREAK, F_NONE,
  M_ALL, 0x10200073, O.OP_SRET, F_NONE,
  M_ALL, 0x30200073, O.OP_MRET, F_NONE,
  M_ALL, 0x10500073, O.OP_WFI, F_NONE,
  0xfe007fff, 0x12000073, O.OP_SFENCE_VMA, F_R,
  M_F3, 0x73 | f3(1), O.OP_CSRRW, F_CSR,
  M_F3, 0x73 | f3(2), O.OP_CSRRS, F_CSR,
  M_F3, 0x73 | f3(3), O.OP_CSRRC, F_CSR,
  M_F3, 0x73 | f3(5), O.OP_CSRRWI, F_CSR,
  M_F3, 0x73 | f3(6), O.OP_CSRRSI, F_CSR,
  M_F3, 0x73 | f3(7), O.OP_CSRRCI, F_CSR,
  M_F3, 0x1b | f3(0), O.OP_ADDIW, F_I,
  M_F7, 0x1b | f3(1), O.OP_SLLIW, F_SH5,
  M_F7, 0x1b | f3(5), O.OP_SRLIW, F_SH5,
  M_F7, 0x1b | f3(5) | f7(0x20), O.OP_SRAIW, F_SH5,
  M_F7, 0x3b | f3(0), O.OP_ADDW, F_R,
  M_F7, 0x3b | f3(0) | f7(0x20), O.OP_SUBW, F_R,
  M_F7, 0x3b | f3(1), O.OP_SLLW, F_R,
  M_F7, 0x3b | f3(5), O.OP_SRLW, F_R,
  M_F7, 0x3b | f3(5) | f7(0x20), O.OP_SRAW, F_R,
  // M
  M_F7, 0x33 | f3(0) | f7(1), O.OP_MUL, F_R,
  M_F7, 0x33 | f3(1) | f7(1), O.OP_MULH, F_R,
  M_F7, 0x33 | f3(2) | f7(1), O.OP_MULHSU, F_R,
  M_F7, 0x33 | f3(3) | f7(1), O.OP_MULHU, F_R,
  M_F7, 0x33 | f3(4) | f7(1), O.OP_DIV, F_R,
  M_F7, 0x33 | f3(5) | f7(1), O.OP_DIVU, F_R,
  M_F7, 0x33 | f3(6) | f7(1), O.OP_REM, F_R,
  M_F7, 0x33 | f3(7) | f7(1), O.OP_REMU, F_R,
  M_F7, 0x3b | f3(0) | f7(1), O.OP_MULW, F_R,
  M_F7, 0x3b | f3(4) | f7(1), O.OP_DIVW, F_R,
  M_F7, 0x3b | f3(5) | f7(1), O.OP_DIVUW, F_R,
  M_F7, 0x3b | f3(6) | f7(1), O.OP_REMW, F_R,
  M_F7, 0x3b | f3(7) | f7(1), O.OP_REMUW, F_R,
  // A
  M_LR, 0x2f | f3(2) | f5(0x02), O.OP_LR_W, F_R,
  M_AMO, 0x2f | f3(2) | f5(0x03), O.OP_SC_W, F_R,
  M_AMO, 0x2f | f3(2) | f5(0x01), O.OP_AMOSWAP_W, F_R,
  M_AMO, 0x2f | f3(2) | f5(0x00), O.OP_AMOADD_W, F_R,
  M_AMO, 0x2f | f3(2) | f5(0x04), O.OP_AMOXOR_W, F_R,
  M_AMO, 0x2f | f3(2) | f5(0x0c), O.OP_AMOAND_W, F_R,
  M_AMO, 0x2f | f3(2) | f5(0x08), O.OP_AMOOR_W, F_R,
  M_AMO, 0x2f | f3(2) | f5(0x10), O.OP_AMOMIN_W, F_R,
  M_AMO, 0x2f | f3(2) | f5(0x14), O.OP_AMOMAX_W, F_R,
  M_AMO, 0x2f | f3(2) | f5(0x18), O.OP_AMOMINU_W, F_R,
  M_AMO, 0x2f | f3(2) | f5(0x1c), O.OP_AMOMAXU_W, F_R,
  M_LR, 0x2f | f3(3) | f5(0x02), O.OP_LR_D, F_R,
  M_AMO, 0x2f | f3(3) | f5(0x03), O.OP_SC_D, F_R,
  M_AMO, 0x2f | f3(3) | f5(0x01), O.OP_AMOSWAP_D, F_R,
  M_AMO, 0x2f | f3(3) | f5(0x00), O.OP_AMOADD_D, F_R,
  M_AMO, 0x2f | f3(3) | f5(0x04), O.OP_AMOXOR_D, F_R,
  M_AMO, 0x2f | f3(3) | f5(0x0c), O.OP_AMOAND_D, F_R,
  M_AMO, 0x2f | f3(3) | f5(0x08), O.OP_AMOOR_D, F_R,
  M_AMO, 0x2f | f3(3) | f5(0x10), O.OP_AMOMIN_D, F_R,
  M_AMO, 0x2f | f3(3) | f5(0x14), O.OP_AMOMAX_D, F_R,
  M_AMO, 0x2f | f3(3) | f5(0x18), O.OP_AMOMINU_D, F_R,
  M_AMO, 0x2f | f3(3) | f5(0x1c), O.OP_AMOMAXU_D, F_R,
  // F and D loads and stores
  M_F3, 0x07 | f3(2), O.OP_FLW, F_I,
  M_F3, 0x07 | f3(3), O.OP_FLD, F_I,
  M_F3, 0x27 | f3(2), O.OP_FSW, F_S,
  M_F3, 0x27 | f3(3), O.OP_FSD, F_S,
  // fused multiply-add: fmt field bits 26:25 = 0 (S) or 1 (D)
  M_R4, 0x43, O.OP_FMADD_S, F_R4,
  M_R4, 0x47, O.OP_FMSUB_S, F_R4,
  M_R4, 0x4b, O.OP_FNMSUB_S, F_R4,
  M_R4, 0x4f, O.OP_FNMADD_S, F_R4,
  M_R4, 0x43 | f7(1), O.OP_FMADD_D, F_R4,
  M_R4, 0x47 | f7(1), O.OP_FMSUB_D, F_R4,
  M_R4, 0x4b | f7(1), O.OP_FNMSUB_D, F_R4,
  M_R4, 0x4f | f7(1), O.OP_FNMADD_D, F_R4,
  // OP-FP, binary32
  M_FP, 0x53 | f7(0x00), O.OP_FADD_S, F_RM,
  M_FP, 0x53 | f7(0x04), O.OP_FSUB_S, F_RM,
  M_FP, 0x53 | f7(0x08), O.OP_FMUL_S, F_RM,
  M_FP, 0x53 | f7(0x0c), O.OP_FDIV_S, F_RM,
  M_FP_RS2, 0x53 | f7(0x2c), O.OP_FSQRT_S, F_RM,
  M_FP_F3, 0x53 | f7(0x10) | f3(0), O.OP_FSGNJ_S, F_R,
  M_FP_F3, 0x53 | f7(0x10) | f3(1), O.OP_FSGNJN_S, F_R,
  M_FP_F3, 0x53 | f7(0x10) | f3(2), O.OP_FSGNJX_S, F_R,
  M_FP_F3, 0x53 | f7(0x14) | f3(0), O.OP_FMIN_S, F_R,
  M_FP_F3, 0x53 | f7(0x14) | f3(1), O.OP_FMAX_S, F_R,
  M_FP_RS2, 0x53 | f7(0x60) | r2(0), O.OP_FCVT_W_S, F_RM,
  M_FP_RS2, 0x53 | f7(0x60) | r2(1), O.OP_FCVT_WU_S, F_RM,
  M_FP_RS2, 0x53 | f7(0x60) | r2(2), O.OP_FCVT_L_S, F_RM,
  M_FP_RS2, 0x53 | f7(0x60) | r2(3), O.OP_FCVT_LU_S, F_RM,
  M_FP_RS2_F3, 0x53 | f7(0x70) | f3(0), O.OP_FMV_X_W, F_R,
  M_FP_RS2_F3, 0x53 | f7(0x70) | f3(1), O.OP_FCLASS_S, F_R,
  M_FP_F3, 0x53 | f7(0x50) | f3(2), O.OP_FEQ_S, F_R,
  M_FP_F3, 0x53 | f7(0x50) | f3(1), O.OP_FLT_S, F_R,
  M_FP_F3, 0x53 | f7(0x50) | f3(0), O.OP_FLE_S, F_R,
  M_FP_RS2, 0x53 | f7(0x68) | r2(0), O.OP_FCVT_S_W, F_RM,
  M_FP_RS2, 0x53 | f7(0x68) | r2(1), O.OP_FCVT_S_WU, F_RM,
  M_FP_RS2, 0x53 | f7(0x68) | r2(2), O.OP_FCVT_S_L, F_RM,
  M_FP_RS2, 0x53 | f7(0x68) | r2(3), O.OP_FCVT_S_LU, F_RM,
  M_FP_RS2_F3, 0x53 | f7(0x78) | f3(0), O.OP_FMV_W_X, F_R,
  M_FP_RS2, 0x53 | f7(0x20) | r2(1), O.OP_FCVT_S_D, F_RM,
  // OP-FP, binary64
  M_FP, 0x53 | f7(0x01), O.OP_FADD_D, F_RM,
  M_FP, 0x53 | f7(0x05), O.OP_FSUB_D, F_RM,
  M_FP, 0x53 | f7(0x09), O.OP_FMUL_D, F_RM,
  M_FP, 0x53 | f7(0x0d), O.OP_FDIV_D, F_RM,
  M_FP_RS2, 0x53 | f7(0x2d), O.OP_FSQRT_D, F_RM,
  M_FP_F3, 0x53 | f7(0x11) | f3(0), O.OP_FSGNJ_D, F_R,
  M_FP_F3, 0x53 | f7(0x11) | f3(1), O.OP_FSGNJN_D, F_R,
  M_FP_F3, 0x53 | f7(0x11) | f3(2), O.OP_FSGNJX_D, F_R,
  M_FP_F3, 0x53 | f7(0x15) | f3(0), O.OP_FMIN_D, F_R,
  M_FP_F3, 0x53 | f7(0x15) | f3(1), O.OP_FMAX_D, F_R,
  M_FP_RS2, 0x53 | f7(0x61) | r2(0), O.OP_FCVT_W_D, F_RM,
  M_FP_RS2, 0x53 | f7(0x61) | r2(1), O.OP_FCVT_WU_D, F_RM,
  M_FP_RS2, 0x53 | f7(0x61) | r2(2), O.OP_FCVT_L_D, F_RM,
  M_FP_RS2, 0x53 | f7(0x61) | r2(3), O.OP_FCVT_LU_D, F_RM,
  M_FP_RS2_F3, 0x53 | f7(0x71) | f3(0), O.OP_FMV_X_D, F_R,
  M_FP_RS2_F3, 0x53 | f7(0x71) | f3(1), O.OP_FCLASS_D, F_R,
  M_FP_F3, 0x53 | f7(0x51) | f3(2), O.OP_FEQ_D, F_R,
  M_FP_F3, 0x53 | f7(0x51) | f3(1), O.OP_FLT_D, F_R,
  M_FP_F3, 0x53 | f7(0x51) | f3(0), O.OP_FLE_D, F_R,
  M_FP_RS2, 0x53 | f7(0x69) | r2(0), O.OP_FCVT_D_W, F_RM,
  M_FP_RS2, 0x53 | f7(0x69) | r2(1), O.OP_FCVT_D_WU, F_RM,
  M_FP_RS2, 0x53 | f7(0x69) | r2(2), O.OP_FCVT_D_L, F_RM,
  M_FP_RS2, 0x53 | f7(0x69) | r2(3), O.OP_FCVT_D_LU, F_RM,
  M_FP_RS2_F3, 0x53 | f7(0x79) | f3(0), O.OP_FMV_D_X, F_R,
  M_FP_RS2, 0x53 | f7(0x21) | r2(0), O.OP_FCVT_D_S, F_RM,
];

/** Ops whose rd names an f register (so rd = 0 is f0, not x0). */
export function rdIsFloat(op: u32): bool {
  if (op == O.OP_FLW || op == O.OP_FLD) return true;
  if (op >= O.OP_FMADD_S && op <= O.OP_FCVT_D_S) {
    const k = op >= O.OP_FMADD_D ? op - O.OP_D_OFFSET : op;
    // integer results: conversions to integers, moves to x, compares, classify
    if (k >= O.OP_FCVT_W_S && k <= O.OP_FCLASS_S) return false;
    return true;
  }
  return false;
}

/** Rounding-mode fields 5 and 6 are reserved: such an instruction is illegal. */
@inline function badStaticRm(rm: u32): bool { return rm == 5 || rm == 6; }

@inline function sext(v: u32, bits: u32): i32 {
  const s = 32 - bits;
  return (<i32>(v << s)) >> s;
}

function writeEntry(e: usize, op: u32, rd: u32, rs1: u32, rs2: u32, imm: i32, len: u32, raw: u32): void {
  if (rd == 0 && !rdIsFloat(op)) rd = X_SCRATCH;
  store<u8>(e + E_LEN, <u8>len);
  store<u16>(e + E_RD, <u16>(rd << 3));
  store<u16>(e + E_RS1, <u16>(rs1 << 3));
  store<u16>(e + E_RS2, <u16>(rs2 << 3));
  store<i32>(e + E_IMM, imm);
  store<u32>(e + E_RAW, raw);
  store<u8>(e + E_OP, <u8>op); // last, so a filled op byte means a complete entry
}

function writeIllegal(e: usize, raw: u32, len: u32): void {
  writeEntry(e, O.OP_ILLEGAL, 0, 0, 0, 0, len, raw);
}

/** Decodes a 32-bit instruction into the entry at e. */
export function decode32(e: usize, inst: u32): void {
  const n = <u32>TABLE.length;
  for (let i: u32 = 0; i < n; i += 4) {
    if ((inst & unchecked(TABLE[i])) != unchecked(TABLE[i + 1])) continue;
    const op = unchecked(TABLE[i + 2]);
    const fmt = unchecked(TABLE[i + 3]);
    const rd = (inst >> 7) & 31;
    const rs1 = (inst >> 15) & 31;
    const rs2 = (inst >> 20) & 31;
    const rm = (inst >> 12) & 7;
    let imm: i32 = 0;
    switch (fmt) {
      case F_I: imm = (<i32>inst) >> 20; break;
      case F_S: imm = ((<i32>inst >> 25) << 5) | ((inst >> 7) & 31); break;
      case F_B:
        imm = ((<i32>inst >> 31) << 12) | (((inst >> 7) & 1) << 11) | (((inst >> 25) & 0x3f) << 5) | (((inst >> 8) & 0xf) << 1);
        break;
      case F_U: imm = <i32>(inst & 0xfffff000); break;
      case F_J:
        imm = ((<i32>inst >> 31) << 20) | (inst & 0xff000) | (((inst >> 20) & 1) << 11) | (((inst >> 21) & 0x3ff) << 1);
        break;
      case F_SH6: imm = <i32>((inst >> 20) & 63); break;
      case F_SH5: imm = <i32>((inst >> 20) & 31); break;
      case F_CSR: imm = <i32>(inst >> 20); break;
      case F_R4:
      case F_RM:
        if (badStaticRm(rm)) { writeIllegal(e, inst, 4); return; }
        break;
    }
    // Fields a format does not have are stored as 0, so equal instructions give equal entries.
    const hasRd = fmt != F_S && fmt != F_B && fmt != F_NONE;
    const hasRs1 = fmt != F_U && fmt != F_J && fmt != F_NONE;
    const hasRs2 = fmt == F_R || fmt == F_S || fmt == F_B || fmt == F_R4 || fmt == F_RM;
    writeEntry(e, op, hasRd ? rd : 0, hasRs1 ? rs1 : 0, hasRs2 ? rs2 : 0, imm, 4, inst);
    return;
  }
  writeIllegal(e, inst, 4);
}

@inline function bit(v: u32, from: u32, to: u32): u32 { return ((v >> from) & 1) << to; }
@inline function bits(v: u32, hi: u32, lo: u32, to: u32): u32 { return ((v >> lo) & ((1 << (hi - lo + 1)) - 1)) << to; }

/** Expands a 16-bit compressed instruction into the entry at e (RVC, RV64 forms). */
export function decode16(e: usize, c: u32): void {
  const quadrant = c & 3;
  const funct3 = (c >> 13) & 7;
  const rdp = 8 + ((c >> 2) & 7);   // rd' / rs2'
  const rs1p = 8 + ((c >> 7) & 7);  // rs1' / rd'
  const rd = (c >> 7) & 31;
  const rs2 = (c >> 2) & 31;
  // offsets of the load/store forms, scaled by access size
  const offW = bits(c, 12, 10, 3) | bit(c, 6, 2) | bit(c, 5, 6);
  const offD = bits(c, 12, 10, 3) | bits(c, 6, 5, 6);
  const imm6 = sext(bit(c, 12, 5) | bits(c, 6, 2, 0), 6);
  if (quadrant == 0) {
    switch (funct3) {
      case 0: { // C.ADDI4SPN
        const imm = bits(c, 12, 11, 4) | bits(c, 10, 7, 6) | bit(c, 6, 2) | bit(c, 5, 3);
        if (imm == 0) break;
        writeEntry(e, O.OP_ADDI, rdp, 2, 0, imm, 2, c); return;
      }
      case 1: writeEntry(e, O.OP_FLD, rdp, rs1p, 0, offD, 2, c); return;
      case 2: writeEntry(e, O.OP_LW, rdp, rs1p, 0, offW, 2, c); return;
      case 3: writeEntry(e, O.OP_LD, rdp, rs1p, 0, offD, 2, c); return;
      case 5: writeEntry(e, O.OP_FSD, 0, rs1p, rdp, offD, 2, c); return;
      case 6: writeEntry(e, O.OP_SW, 0, rs1p, rdp, offW, 2, c); return;
      case 7: writeEntry(e, O.OP_SD, 0, rs1p, rdp, offD, 2, c); return;
    }
  } else if (quadrant == 1) {
    switch (funct3) {
      case 0: writeEntry(e, O.OP_ADDI, rd, rd, 0, imm6, 2, c); return; // C.ADDI, C.NOP
      case 1: if (rd == 0) break; writeEntry(e, O.OP_ADDIW, rd, rd, 0, imm6, 2, c); return;
      case 2: writeEntry(e, O.OP_ADDI, rd, 0, 0, imm6, 2, c); return; // C.LI
      case 3: {
        if (rd == 2) { // C.ADDI16SP
          const imm = sext(bit(c, 12, 9) | bit(c, 6, 4) | bit(c, 5, 6) | bits(c, 4, 3, 7) | bit(c, 2, 5), 10);
          if (imm == 0) break;
          writeEntry(e, O.OP_ADDI, 2, 2, 0, imm, 2, c); return;
        }
        if (imm6 == 0) break; // C.LUI with nzimm = 0 is reserved
        writeEntry(e, O.OP_LUI, rd, 0, 0, imm6 << 12, 2, c); return;
      }
      case 4: {
        // An if chain, not a nested switch. AssemblyScript 0.28.20 takes a switch that has a `default` and whose
        // every clause ends in return/continue as never completing, even when a clause can `break` from inside an
        // `if`, and drops what follows it: here the outer `break` after the inner switch, so the reserved
        // encodings below fell through into `case 5` and ran as C.J. (Avoid that shape anywhere in assembly/.)
        const shamt = bit(c, 12, 5) | bits(c, 6, 2, 0);
        const funct2 = (c >> 10) & 3;
        if (funct2 == 0) { writeEntry(e, O.OP_SRLI, rs1p, rs1p, 0, shamt, 2, c); return; }
        if (funct2 == 1) { writeEntry(e, O.OP_SRAI, rs1p, rs1p, 0, shamt, 2, c); return; }
        if (funct2 == 2) { writeEntry(e, O.OP_ANDI, rs1p, rs1p, 0, imm6, 2, c); return; }
        const k = (c >> 5) & 3;
        if ((c >> 12) & 1) {
          if (k == 0) { writeEntry(e, O.OP_SUBW, rs1p, rs1p, rdp, 0, 2, c); return; }
          if (k == 1) { writeEntry(e, O.OP_ADDW, rs1p, rs1p, rdp, 0, 2, c); return; }
          writeIllegal(e, c, 2); return; // reserved (bit 12 = 1, bits 6:5 = 1x)
        }
        const op = k == 0 ? O.OP_SUB : k == 1 ? O.OP_XOR : k == 2 ? O.OP_OR : O.OP_AND;
        writeEntry(e, op, rs1p, rs1p, rdp, 0, 2, c); return;
      }
      case 5: { // C.J
        const imm = sext(bit(c, 12, 11) | bit(c, 11, 4) | bits(c, 10, 9, 8) | bit(c, 8, 10) | bit(c, 7, 6) |
          bit(c, 6, 7) | bits(c, 5, 3, 1) | bit(c, 2, 5), 12);
        writeEntry(e, O.OP_JAL, 0, 0, 0, imm, 2, c); return;
      }
      case 6:
      case 7: { // C.BEQZ, C.BNEZ
        const imm = sext(bit(c, 12, 8) | bits(c, 11, 10, 3) | bits(c, 6, 5, 6) | bits(c, 4, 3, 1) | bit(c, 2, 5), 9);
        writeEntry(e, funct3 == 6 ? O.OP_BEQ : O.OP_BNE, 0, rs1p, 0, imm, 2, c); return;
      }
    }
  } else if (quadrant == 2) {
    switch (funct3) {
      case 0: writeEntry(e, O.OP_SLLI, rd, rd, 0, bit(c, 12, 5) | bits(c, 6, 2, 0), 2, c); return;
      case 1: // C.FLDSP
        writeEntry(e, O.OP_FLD, rd, 2, 0, bit(c, 12, 5) | bits(c, 6, 5, 3) | bits(c, 4, 2, 6), 2, c); return;
      case 2: // C.LWSP
        if (rd == 0) break;
        writeEntry(e, O.OP_LW, rd, 2, 0, bit(c, 12, 5) | bits(c, 6, 4, 2) | bits(c, 3, 2, 6), 2, c); return;
      case 3: // C.LDSP
        if (rd == 0) break;
        writeEntry(e, O.OP_LD, rd, 2, 0, bit(c, 12, 5) | bits(c, 6, 5, 3) | bits(c, 4, 2, 6), 2, c); return;
      case 4: {
        if (((c >> 12) & 1) == 0) {
          if (rs2 == 0) { // C.JR
            if (rd == 0) break;
            writeEntry(e, O.OP_JALR, 0, rd, 0, 0, 2, c); return;
          }
          writeEntry(e, O.OP_ADD, rd, 0, rs2, 0, 2, c); return; // C.MV
        }
        if (rs2 == 0) {
          if (rd == 0) { writeEntry(e, O.OP_EBREAK, 0, 0, 0, 0, 2, c); return; }
          writeEntry(e, O.OP_JALR, 1, rd, 0, 0, 2, c); return; // C.JALR
        }
        writeEntry(e, O.OP_ADD, rd, rd, rs2, 0, 2, c); return; // C.ADD
      }
      case 5: writeEntry(e, O.OP_FSD, 0, 2, rs2, bits(c, 12, 10, 3) | bits(c, 9, 7, 6), 2, c); return;
      case 6: writeEntry(e, O.OP_SW, 0, 2, rs2, bits(c, 12, 9, 2) | bits(c, 8, 7, 6), 2, c); return;
      case 7: writeEntry(e, O.OP_SD, 0, 2, rs2, bits(c, 12, 10, 3) | bits(c, 9, 7, 6), 2, c); return;
    }
  }
  writeIllegal(e, c, 2);
}
