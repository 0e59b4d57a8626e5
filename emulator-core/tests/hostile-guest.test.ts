// Guests that try to wedge the hart (issue 12): each program here once kept run() from returning or from
// completing an instruction. The programs are small bare-metal RV64 assembly, built at test time with
// riscv64-linux-gnu-gcc against tests/asm/link.ld (RAM at 0x8000_0000, entered in M-mode at _start).
//
// A hart that loops inside run() never gives the JavaScript thread back, so a vitest timeout cannot stop it: such
// a run happens in a worker thread (a second instance of hart.wasm on the same shared memory), which the test
// terminates when it does not answer in time.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { loadHartModule } from "../src/node/hart-module.ts";
import { computeLayout, RAM_BASE } from "../src/layout.ts";
import { Hart, StopReason } from "../src/hart.ts";
import { parseElf } from "../src/elf.ts";

const LINK_LD = fileURLToPath(new URL("./asm/link.ld", import.meta.url));
let dir = "";
beforeAll(() => { dir = mkdtempSync(join(tmpdir(), "tv-hostile-")); });
afterAll(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

/** Assembles a bare-metal program (body after _start) and returns its ELF image. */
function build(name: string, body: string): ReturnType<typeof parseElf> {
  const src = join(dir, `${name}.S`), elf = join(dir, `${name}.elf`);
  writeFileSync(src, `  .section .text.init\n  .globl _start\n_start:\n${body}\n` +
    `  .section .tohost, "aw"\n  .align 3\n  .globl tohost\ntohost: .dword 0\n  .globl fromhost\nfromhost: .dword 0\n`);
  execFileSync("riscv64-linux-gnu-gcc", ["-march=rv64gc", "-mabi=lp64d", "-mcmodel=medany", "-nostdlib",
    "-nostartfiles", "-static", "-fno-pie", "-no-pie", "-Wl,--build-id=none", "-Wl,--no-warn-rwx-segments",
    `-T${LINK_LD}`, src, "-o", elf], { stdio: "pipe" });
  return parseElf(new Uint8Array(readFileSync(elf)));
}

/** A fresh hart (1 MiB of RAM is plenty) with the program loaded, reset to its entry. */
function load(image: ReturnType<typeof parseElf>): Hart {
  const hart = new Hart(loadHartModule(), computeLayout(1));
  for (const s of image.segments) hart.writePhys(s.paddr, s.data);
  hart.ex.reset(0, image.entry);
  return hart;
}

// The worker: instantiates hart.wasm on the test's memory, lays it out as the test's hart (init resets the hart
// to M-mode at the start of RAM, where _start is), runs one slice and reports run()'s result.
const WORKER_SOURCE = `
const { parentPort, workerData: w } = require("node:worker_threads");
const inst = new WebAssembly.Instance(w.module, { env: { memory: w.memory, abort() { throw new Error("hart aborted"); } } });
inst.exports.init(...w.initArgs);
const t0 = Date.now();
const stop = inst.exports.run(w.budget);
parentPort.postMessage({ stop, ms: Date.now() - t0 });
`;

/** Runs one slice of budget steps from the start of RAM in a worker; rejects if run() has not returned within
 *  limitMs (the worker is then terminated). */
function runSliceInWorker(hart: Hart, budget: number, limitMs: number): Promise<{ stop: number; ms: number }> {
  const l = hart.layout;
  const initArgs = [0, l.hartBase, l.ramOffset, RAM_BASE, BigInt(l.ramBytes), l.decodeMap, l.decodeOwners,
    l.decodeSlots, l.decodeSlotCount, l.dirtyMap];
  const worker = new Worker(WORKER_SOURCE, {
    eval: true, workerData: { module: loadHartModule(), memory: hart.memory, initArgs, budget },
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void worker.terminate();
      reject(new Error(`run(${budget}) did not return within ${limitMs} ms: the guest wedged the host thread`));
    }, limitMs);
    worker.once("message", (m) => { clearTimeout(timer); void worker.terminate(); resolve(m); });
    worker.once("error", (e) => { clearTimeout(timer); reject(e); });
  });
}

describe("a trap loop counts against the slice (issue 12, defect 1)", () => {
  // mtvec (or stvec) on a zero word, which is illegal: every trap enters a handler whose first instruction traps.
  const cases: [string, string, "M" | "S"][] = [
    ["mtvec on a zero word, in M-mode", `
      la t0, zeros
      csrw mtvec, t0
      .word 0
      .align 3
    zeros: .dword 0
    `, "M"],
    ["stvec on a zero word, illegal instructions delegated to S-mode", `
      la t0, zeros
      csrw stvec, t0
      li t0, 1 << 2
      csrw medeleg, t0
      li t0, 3 << 11
      csrc mstatus, t0
      li t0, 1 << 11
      csrs mstatus, t0      # MPP = S
      la t0, 1f
      csrw mepc, t0
      mret
    1: .word 0
      .align 3
    zeros: .dword 0
    `, "S"],
  ];
  for (const [title, body, handlerMode] of cases) {
    it(title, async () => {
      const image = build(title.replace(/\W+/g, "_"), body);
      const hart = load(image);
      const zeros = image.symbols.get("zeros")!;
      const budget = 1_000_000;
      const r = await runSliceInWorker(hart, budget, 5_000);
      expect(r.stop).toBe(StopReason.Slice);
      // the hart sits in the loop: it trapped on the zero word from the zero word
      const s = hart.state;
      if (handlerMode === "M") {
        expect(s.mcause).toBe(2n);
        expect(s.mepc).toBe(zeros);
      } else {
        expect(s.scause).toBe(2n);
        expect(s.sepc).toBe(zeros);
        expect(hart.priv).toBe(1);
      }
      expect(hart.pc).toBe(zeros);
      // traps do not retire: only the set-up instructions did, the rest of the budget went to traps
      expect(hart.instret).toBeLessThan(20n);
    }, 10_000);
  }
});

describe("a misaligned load across a page boundary (issue 12, defect 3)", () => {
  // The load was split into byte loads, each replayed from byte 0 after the host answered, with one MMIO answer
  // slot for all of them: the bytes took the answer from each other and the load never completed. Now a load that
  // crosses a page is emulated only when both pages are RAM; if either half is device memory it raises a load
  // access fault (as a page-crossing store already did) without any device access.
  const RAM_END = RAM_BASE + BigInt(computeLayout(1).ramBytes);
  const HANDLER = `
      .align 2
    handler: j handler
    `;
  const cases: [string, string][] = [
    ["into a device page (0x02000ffe)", "li t0, 0x02000ffe\nfault: lw t1, 0(t0)"],
    ["from the last page of RAM past its end", `li t0, ${RAM_END - 2n}\nfault: lw t1, 0(t0)`],
    ["from a device page into RAM, with fld", `li t0, ${RAM_BASE - 4n}\nfault: fld ft0, 0(t0)`],
  ];
  for (const [title, access] of cases) {
    it(`${title} raises a load access fault, and no device sees a partial access`, () => {
      const image = build(title.replace(/\W+/g, "_"), `
        la t0, handler
        csrw mtvec, t0
        li t0, 1 << 13
        csrs mstatus, t0      # FS = Initial
        ${access}
        j .
        ${HANDLER}`);
      const hart = load(image);
      let deviceAccesses = 0;
      for (let i = 0; i < 100 && hart.pc !== image.symbols.get("handler"); i++) {
        if (hart.run(1000) === StopReason.Mmio) { deviceAccesses++; hart.mmioComplete(0x5an); }
      }
      expect(deviceAccesses).toBe(0);
      expect(hart.pc).toBe(image.symbols.get("handler"));
      expect(hart.state.mcause).toBe(5n); // load access fault
      expect(hart.state.mepc).toBe(image.symbols.get("fault"));
      expect(hart.state.mtval).toBe(BigInt.asUintN(64, hart.reg(5)));
    });
  }

  it("across two RAM pages still reads the bytes of both", () => {
    const image = build("ram_cross", `
        la t0, page_end
        li t1, 0x0807060504030201
        sd t1, -4(t0)
        ld t2, -4(t0)
        lw t3, -2(t0)
        lhu t4, -1(t0)
      done: j done
        .section .data
        .align 12
        .space 4096
      page_end: .space 8`);
    const hart = load(image);
    for (let i = 0; i < 10 && hart.pc !== image.symbols.get("done"); i++) expect(hart.run(1000)).toBe(StopReason.Slice);
    expect(hart.pc).toBe(image.symbols.get("done"));
    expect(hart.reg(7)).toBe(0x0807060504030201n);
    expect(hart.reg(28)).toBe(0x06050403n);
    expect(hart.reg(29)).toBe(0x0504n);
  });
});
