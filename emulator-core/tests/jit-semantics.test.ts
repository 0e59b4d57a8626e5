// The integer ops' semantics table (semantics.mjs) and what is generated from it: the interpreter's functions
// (assembly/semantics.ts) and the JIT's emitters (src/jit/semantics.ts) must be what the table says now, and the
// generator must refuse an expression that does not type-check rather than generate two tiers that disagree.

import { describe, it, expect } from "vitest";
import { readFileSync } from "node:fs";
// @ts-expect-error: a plain ESM build script without type declarations
import { assemblyText, typescriptText, checkExpression } from "../semantics-gen.mjs";
import { VALUE_EMITTERS, BRANCH_EMITTERS, OP } from "../src/jit/semantics.ts";

describe("the semantics table", () => {
  it("the generated files match the table", () => {
    expect(readFileSync(new URL("../assembly/semantics.ts", import.meta.url), "utf8")).toBe(assemblyText());
    expect(readFileSync(new URL("../src/jit/semantics.ts", import.meta.url), "utf8")).toBe(typescriptText());
  });

  it("covers RV64I's and M's integer ops and the six branches", () => {
    const names = ["LUI", "AUIPC", "ADDI", "SLTI", "SLTIU", "XORI", "ORI", "ANDI", "SLLI", "SRLI", "SRAI", "ADD", "SUB",
      "SLL", "SLT", "SLTU", "XOR", "SRL", "SRA", "OR", "AND", "ADDIW", "SLLIW", "SRLIW", "SRAIW", "ADDW", "SUBW", "SLLW",
      "SRLW", "SRAW", "MUL", "MULH", "MULHSU", "MULHU", "DIV", "DIVU", "REM", "REMU", "MULW", "DIVW", "DIVUW", "REMW",
      "REMUW"] as const;
    for (const n of names) expect(VALUE_EMITTERS.has(OP[n]), n).toBe(true);
    expect(VALUE_EMITTERS.size).toBe(names.length);
    for (const n of ["BEQ", "BNE", "BLT", "BGE", "BLTU", "BGEU"] as const) expect(BRANCH_EMITTERS.has(OP[n]), n).toBe(true);
  });

  it("type-checks expressions", () => {
    expect(checkExpression("(i64.add rs1 imm)")).toBe("i64");
    expect(checkExpression("(i64.lt_s rs1 rs2)")).toBe("i32");
    expect(checkExpression("(let ((a (i32.wrap_i64 rs1))) (i64.extend_i32_s a))")).toBe("i64");
    expect(() => checkExpression("(i64.add rs1 (i32.const 1))")).toThrow(/operand 2 must be i64/);
    expect(() => checkExpression("(i64.frob rs1)")).toThrow(/unknown instruction/);
    expect(() => checkExpression("(i64.add rs1 rs3)")).toThrow(/unknown name rs3/);
    expect(() => checkExpression("(if i64 rs1 rs1 rs2)")).toThrow(/condition must be i32/);
    expect(() => checkExpression("(i64.add rs1 (let ((a rs2)) a))")).toThrow(/let only at the start/);
    expect(() => checkExpression("(i32.const 4294967296)")).toThrow(/does not fit/);
    expect(() => checkExpression("(i64.add rs1 rs2")).toThrow(/missing \)|unexpected end/);
  });
});
