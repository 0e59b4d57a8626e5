// The hart state block: one record per hart in the VM's shared wasm memory, at hartBase. This table is the one
// source of its layout: emulator-core/build.mjs generates assembly/hart-state.ts (for the hart) and
// src/hart-state.ts (for the TypeScript machine, snapshots and tests) from it. Change the layout here only.
//
// The block holds the hart's whole architectural state (registers, pc, privilege, every CSR, the LR/SC
// reservation), the words the hart and its host exchange (exception, MMIO, HTIF), and the translation caches'
// bookkeeping (TLB context keys and flush generation). The TLBs themselves follow the record; a snapshot saves
// everything before them and drops the TLBs and the decoded-instruction cache, which restore rebuilds.

/** Regions of the block (offsets in bytes from hartBase). */
export const REGIONS = [
  { name: "XREGS", offset: 0, bytes: 33 * 8, doc: "x0..x31 and a scratch slot that absorbs writes to x0 (u64 each)" },
  { name: "FREGS", offset: 512, bytes: 32 * 8, doc: "f0..f31 (u64 each, NaN-boxed singles)" },
  { name: "SPAN", offset: 1024, bytes: 48, doc: "scratch decoded entry for a page-straddling instruction, then a page-cross sentinel" },
  { name: "FIELDS", offset: 1280, bytes: 768, doc: "the fields below (FIELDS)" },
  { name: "PMPCFG", offset: 2048, bytes: 16 * 8, doc: "pmpcfg0..15 (only the even ones exist on RV64)" },
  { name: "PMPADDR", offset: 2176, bytes: 64 * 8, doc: "pmpaddr0..63" },
  { name: "TLB", offset: 4096, bytes: 3 * 8192 * 16, doc: "software TLBs: read, write, fetch; 8192 entries of {u64 tag, u64 addend}" },
];

/** Bytes of the block a snapshot keeps: everything before the TLBs. */
export const SAVED_BYTES = 4096;

/** Fields of the FIELDS region, in order: [name, type, what it is]. u64 fields come first so that every field
 *  is naturally aligned with no padding (the generated AssemblyScript class checks its offsets against these). */
export const FIELDS = [
  ["pc", "u64", "program counter (run() keeps it in a local and writes it back when it returns)"],
  ["instret", "u64", "instructions retired before the current run() call"],
  ["cycleOffset", "u64", "mcycle = instret + cycleOffset (the two counters are written independently)"],
  ["mstatus", "u64", "mstatus (sstatus is a view of it)"],
  ["medeleg", "u64", "medeleg"],
  ["mideleg", "u64", "mideleg"],
  ["mie", "u64", "mie (sie is a view of it)"],
  ["mipSoftware", "u64", "the mip bits software writes (SSIP, STIP, SEIP)"],
  ["mipLines", "u64", "the mip bits devices drive: CLINT, PLIC and the in-emulator SBI timer"],
  ["mtvec", "u64", "mtvec"],
  ["stvec", "u64", "stvec"],
  ["mepc", "u64", "mepc"],
  ["sepc", "u64", "sepc"],
  ["mcause", "u64", "mcause"],
  ["scause", "u64", "scause"],
  ["mtval", "u64", "mtval"],
  ["stval", "u64", "stval"],
  ["mscratch", "u64", "mscratch"],
  ["sscratch", "u64", "sscratch"],
  ["mcounteren", "u64", "mcounteren"],
  ["scounteren", "u64", "scounteren"],
  ["menvcfg", "u64", "menvcfg"],
  ["senvcfg", "u64", "senvcfg"],
  ["mcountinhibit", "u64", "mcountinhibit"],
  ["satp", "u64", "satp (ASID reads as 0)"],
  ["mhartid", "u64", "mhartid"],
  ["tselect", "u64", "tselect (no triggers exist)"],
  ["mtime", "u64", "the platform timer as the host last set it: the time CSR reads it"],
  ["reservationAddr", "u64", "LR/SC: wasm address of the reserved doubleword"],
  ["reservationValue", "u64", "LR/SC: the value LR read"],
  ["excCause", "u64", "the pending exception's cause (with exc = EXC_TRAP)"],
  ["excTval", "u64", "the pending exception's tval"],
  ["mmioAddr", "u64", "MMIO exchange: guest physical address of the access the hart stopped on"],
  ["mmioData", "u64", "MMIO exchange: the store's value, or the host's answer to a load"],
  ["tohostAddr", "u64", "HTIF: guest physical address of tohost (0 = none)"],
  ["htifValue", "u64", "HTIF: the last value written to tohost"],
  ["dataKey", "u64", "TLB tag key of data accesses: access context and flush generation, in bits 52..63"],
  ["fetchKey", "u64", "TLB tag key of instruction fetches"],
  ["priv", "u32", "privilege level: 0 U, 1 S, 3 M"],
  ["frm", "u32", "frm (rounding mode)"],
  ["fflags", "u32", "fflags (accrued exception flags)"],
  ["exc", "u32", "a slow path's pending outcome: 0 none, 1 trap (excCause/excTval), 2 stop (stopReason)"],
  ["stopReason", "u32", "why run() stops (STOP_*), with exc = EXC_STOP"],
  ["mmioSize", "u32", "MMIO exchange: access size in bytes"],
  ["mmioIsStore", "u32", "MMIO exchange: 1 for a store"],
  ["mmioAnswer", "u32", "MMIO exchange: 0 none, 1 value ready in mmioData, 2 access fault"],
  ["reservationValid", "u32", "LR/SC: 1 while a reservation is held"],
  ["translationEpoch", "u32", "bumped by every change translation depends on (satp, SUM, MXR, MPRV, MPP, privilege)"],
  ["keysEpoch", "u32", "translationEpoch when dataKey/fetchKey were computed"],
  ["tlbGeneration", "u32", "TLB flush generation (tags of older generations never match)"],
  ["tlbFlushNeeded", "u32", "1 when a satp write needs the TLBs flushed before the next access"],
  ["flushRequest", "u32", "set by another thread (a remote fence): bit 0 flush the TLBs, bit 1 drop decoded code; run() takes it on entry"],
  ["sbiInHost", "u32", "1: an ECALL from S-mode stops the hart with STOP_ECALL so the host acts as SBI firmware"],
  ["dirtyLog", "u32", "1 while the host tracks written RAM pages (live migration): every RAM write marks its page in the dirty bitmap"],
];
