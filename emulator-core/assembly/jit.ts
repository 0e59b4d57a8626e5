// The interpreter's side of the JIT (src/jit/README.md): execution counts of block starts, and the lookup from a
// block start to the compiled function the host installed in this module's function table.
//
// Nothing here runs while the JIT is off: run() looks at `jitEnabled` only where it already left its straight line
// (a page cross, which with the JIT on is also every taken branch and jump: see hart.ts).
//
// The lookup is a table of JIT_SETS sets of two entries, indexed by the block's virtual pc. An entry is valid
// for a block start when it holds the same virtual pc AND the same guest physical address AND the current
// epoch. The virtual pc is baked into compiled code (AUIPC, links, exits) and the physical address names the
// code itself; run() gets that physical address from its fetch translation, done under the current translation
// context (it looks it up afresh after anything that changes privilege or translation), so a block is never
// entered through a mapping other than the one it was compiled for. The epoch moves whenever all decoded
// instructions are dropped (icache.ts flushDecodeCache: host writes to RAM, state restore, remote flush requests,
// a FENCE.I after stores into more code pages than code-pages.ts keeps), which makes every entry stale at once; a
// stale entry is never entered, only reclaimed. A FENCE.I after stores into a few code pages drops only those
// pages' regions, in the host (code-pages.ts, src/jit/tier.ts dropWrittenPages).
//
// Entry layout (32 bytes): u64 virtual pc, u64 physical address, u32 epoch, u32 unused, u32 table index (0: none,
// the entry is free; JIT_NONE: the host could not compile a block there, or its region is being built off the VM's
// thread; else the compiled block's own function, which run() and other regions call directly:
// src/jit/compile-region.ts), u32 unused. The set of a pc mixes higher bits of the address into its index, so that
// user code and the kernel's (whose addresses differ above bit 32) do not meet in the same sets page for page.
//
// Block starts are counted up to the threshold in a table of their own (JIT_COUNTS: a u32 per hash of the pc, no
// tags: two starts that share a counter only become hot sooner). Counting in the lookup's entries made starts that
// share a set push each other out, each resetting the other's count: a user start and a kernel start took turns
// in one way and neither was ever compiled (the shell loop left compiled code twice an iteration for that).
//
// Two more tables serve compiled code:
// - The jump cache (JIT_JUMPS), what a region's exit to another page looks up first: direct-mapped by virtual pc,
//   an entry {u64 pc, u64 fetchKey, u32 epoch, u32 table index} says that at pc, under that fetch key (privilege
//   and TLB generation: mmu.ts) and in that epoch, the lookup held that table index. It stands for the fetch
//   TLB's translation and the lookup's physical check together: whatever could change either moves the key or
//   the epoch (a TLB flush, a change of privilege, an invalidation of everything) or clears the cache (an
//   eviction, which may reuse the index; a wrap of the TLB generation). The lookup does the same in about twice
//   the loads and two stores, on every hop between pages (a fifth of the shell loop's time).
// - Used marks (JIT_USED): a byte per table index (modulo 64 Ki, aliasing only gives a region a second chance),
//   set whenever a block is entered through its index; the host's clock eviction reads and clears them.

export const JIT_SETS: u32 = 8192;
const JIT_ENTRIES: u32 = 2 * JIT_SETS;
const ENTRY_BYTES: u32 = 32;
export const JIT_BYTES: u32 = JIT_ENTRIES * ENTRY_BYTES;
/** Where the lookup lives: a fixed range of the region below the first hart block (layout.ts puts hart blocks at
 *  1 MiB; this module's static data ends near 70 KiB). Fixed rather than static data so that hart.wasm carries no
 *  512 KiB of zeros; init() checks that it fits. One hart per memory may use the JIT. */
export const JIT_TABLE: usize = 512 * 1024;
/** The jump cache: JIT_JUMP_ENTRIES entries of 32 bytes at 256 KiB (its layout: this file's header). */
export const JIT_JUMPS: usize = 256 * 1024;
export const JIT_JUMP_ENTRIES: u32 = 4096;
const JUMP_BYTES: u32 = JIT_JUMP_ENTRIES * 32;
/** The used marks: a byte per table index (modulo JIT_USED_BYTES), at 384 KiB. */
export const JIT_USED: usize = 384 * 1024;
const JIT_USED_BYTES: u32 = 65536;
/** The execution counts of block starts not compiled yet: JIT_COUNT_SLOTS u32, at 448 KiB. */
const JIT_COUNTS: usize = 448 * 1024;
const JIT_COUNT_SLOTS: u32 = 8192;

/** table index stored for a block start the host could not compile (its first instruction is not compiled) */
export const JIT_NONE: u32 = 0xffffffff;
/** jitProbe's answer when the block start just became hot and run() must stop for the host to compile it */
export const JIT_REQUEST: u32 = 0xfffffffe;
/** the most instructions in one block of a compiled region: run() enters a region only with at least this much
 *  budget left, so that its entry block always fits (the region itself stops within the budget it is given) */
export const JIT_MAX_BLOCK: i32 = 64;

/** the JIT's switch: run() enters and counts blocks only while it is set */
export let jitEnabled: bool = false;
/** executions of a block start before the host is asked to compile it (1: on first execution) */
let jitThreshold: u32 = 2;

/** what the last STOP_JIT asks for (read by the host through jitRequestPc/jitRequestPhys/jitRequestSteps) */
let reqPc: u64 = 0;
let reqPhys: u64 = 0;
let reqSteps: i32 = 0;

/** The lookup's header, just below its table: the epoch (u32 at 0: entries of other epochs are stale; it starts at
 *  1, so that the zeroed table holds nothing) and the count of blocks entered from another region's exit (u64 at
 *  8). In memory rather than globals because compiled regions look blocks up themselves
 *  when they leave (src/jit/compile-region.ts $leave, which holds these addresses and the entry layout too). */
export const JIT_HEADER: usize = JIT_TABLE - 64;
@inline function jitEpoch(): u32 { return load<u32>(JIT_HEADER); }

/** The hash of a block start's pc that indexes the lookup's sets and the counters: the halfword index with higher
 *  bits mixed in (user and kernel code, 2^32 and more apart, would otherwise meet page for page). compile-region.ts
 *  lookUpBlock computes the same. */
@inline function pcHash(pc: u64): usize { return <usize>((pc >> 1) ^ (pc >> 14)); }
/** The set of pc: two entries (ways), so that a start answered JIT_NONE does not push out a compiled block that
 *  shares its index (a compiled block is replaced only by another compiled one: jitInstall). */
@inline function setOf(pc: u64): usize {
  return JIT_TABLE + (pcHash(pc) & (JIT_SETS - 1)) * (2 * ENTRY_BYTES);
}
/** The counter of the block start at pc. */
@inline function countOf(pc: u64): usize {
  return JIT_COUNTS + ((pcHash(pc) & (JIT_COUNT_SLOTS - 1)) << 2);
}
@inline function holds(ent: usize, pc: u64, phys: u64): bool {
  return load<u64>(ent) == pc && load<u64>(ent, 8) == phys && load<u32>(ent, 16) == jitEpoch();
}
/** A compiled block, current: kept until the host evicts it. */
@inline function compiledHere(ent: usize): bool {
  const slot = load<u32>(ent, 24);
  return load<u32>(ent, 16) == jitEpoch() && slot != 0 && slot != JIT_NONE;
}
/** The way of set that holds (pc, phys), or 0. */
@inline function find(set: usize, pc: u64, phys: u64): usize {
  return holds(set, pc, phys) ? set : holds(set + ENTRY_BYTES, pc, phys) ? set + ENTRY_BYTES : 0;
}
/** The way of set that held a compiled block for (pc, phys) before the last invalidation, or 0. */
@inline function staleCompiled(set: usize, pc: u64, phys: u64): usize {
  for (let way: usize = 0; way < 2; way++) {
    const ent = set + way * ENTRY_BYTES;
    const slot = load<u32>(ent, 24);
    if (load<u64>(ent) == pc && load<u64>(ent, 8) == phys && load<u32>(ent, 16) != jitEpoch() && slot != 0 && slot != JIT_NONE) return ent;
  }
  return 0;
}
/** Whether the entry holds nothing current: empty (no table index), or left from an earlier epoch. */
@inline function vacant(ent: usize): bool {
  return load<u32>(ent, 16) != jitEpoch() || load<u32>(ent, 24) == 0;
}
/** A way of set a start the host answered for may take, or 0: a vacant way first, then one holding JIT_NONE. */
@inline function victim(set: usize): usize {
  const other = set + ENTRY_BYTES;
  if (vacant(set)) return set;
  if (vacant(other)) return other;
  if (!compiledHere(set)) return set;
  if (!compiledHere(other)) return other;
  return 0;
}
@inline function claim(ent: usize, pc: u64, phys: u64, slot: u32): void {
  store<u64>(ent, pc);
  store<u64>(ent, phys, 8);
  store<u32>(ent, jitEpoch(), 16);
  store<u32>(ent, slot, 24);
}

@inline function markUsed(slot: u32): void { store<u8>(JIT_USED + <usize>(slot & (JIT_USED_BYTES - 1)), 1); }
@inline function usedMark(slot: u32): bool { return load<u8>(JIT_USED + <usize>(slot & (JIT_USED_BYTES - 1))) != 0; }

/** Empties the jump cache (its entries name table indices and translations that may no longer hold). */
export function jitForgetJumps(): void {
  if (jitEnabled) memory.fill(JIT_JUMPS, 0, JUMP_BYTES);
}

/** Turns the JIT on or off (threshold: executions before compiling, at least 1). Turning it on drops every entry. */
export function jitSetup(on: bool, threshold: u32): void {
  // (off, the lookup is left alone: another hart's instance may own it)
  if (on) {
    memory.fill(JIT_TABLE, 0, JIT_BYTES);
    memory.fill(JIT_JUMPS, 0, JUMP_BYTES);
    memory.fill(JIT_USED, 0, JIT_USED_BYTES);
    memory.fill(JIT_COUNTS, 0, JIT_COUNT_SLOTS * 4);
    store<u32>(JIT_HEADER, 1);
    store<u64>(JIT_HEADER, 0, 8);
  }
  jitEnabled = on;
  jitThreshold = threshold < 1 ? 1 : threshold;
}

/** Every compiled block becomes stale (called wherever decoded instructions are dropped). */
export function jitInvalidateAll(): void {
  if (!jitEnabled) return; // (turning it on clears the lookup)
  const e = jitEpoch() + 1;
  store<u32>(JIT_HEADER, e);
  if (e == 0) { // wrapped: old entries could match again
    memory.fill(JIT_TABLE, 0, JIT_BYTES);
    memory.fill(JIT_JUMPS, 0, JUMP_BYTES);
    store<u32>(JIT_HEADER, 1);
  }
}

/** At a block start pc (physical address phys), which counts as `weight` executions: the table index of its
 *  compiled block; 0 or JIT_NONE to interpret it; JIT_REQUEST when it just became hot (the request is recorded for
 *  the host, which answers with jitInstall before run() goes on). Not inlined: run() calls it only with the JIT on. */
export function jitProbe(pc: u64, phys: u64, weight: u32): u32 {
  const set = setOf(pc);
  const ent = find(set, pc, phys);
  if (ent) {
    const slot = load<u32>(ent, 24);
    if (slot != 0) {
      if (slot != JIT_NONE) markUsed(slot); // used since the host last looked (its eviction passes over it once)
      return slot;
    }
  } else {
    const stale = staleCompiled(set, pc, phys);
    if (stale) {
      // compiled before the last invalidation: asked for again at once, not counted up to the threshold again
      // (the host installs its region again, without compiling, when its code is unchanged, into this way)
      claim(stale, pc, phys, 0);
      return request(pc, phys);
    }
  }
  const c = countOf(pc);
  const count = load<u32>(c) + weight;
  if (count >= jitThreshold) {
    store<u32>(c, 0);
    return request(pc, phys);
  }
  store<u32>(c, count);
  return 0;
}

@inline function request(pc: u64, phys: u64): u32 {
  reqPc = pc;
  reqPhys = phys;
  return JIT_REQUEST;
}

/** Blocks entered from another region's exit (compile-region.ts $leave) rather than from run(). */
export function jitChainCount(): u64 { return jitEnabled ? load<u64>(JIT_HEADER, 8) : 0; }

/** Compiled blocks entered, and the instructions they retired (statistics for the host: how long the runs of
 *  compiled code are between returns to run()). */
export let jitCalls: u64 = 0;
export let jitRetired: u64 = 0;
export function jitCallCount(): u64 { return jitCalls; }
export function jitRetiredCount(): u64 { return jitRetired; }
@inline export function jitCounted(retired: u64): void { jitCalls++; jitRetired += retired; }

/** run() stops with STOP_JIT after spending `steps` of its budget. */
export function jitNoteSteps(steps: i32): void { reqSteps = steps; }

export function jitRequestPc(): u64 { return reqPc; }
export function jitRequestPhys(): u64 { return reqPhys; }
export function jitRequestSteps(): i32 { return reqSteps; }

/** The host put the compiled block at (pc, phys) in table index `slot` (or JIT_NONE: no block there). */
export function jitInstall(pc: u64, phys: u64, slot: u32): void {
  const set = setOf(pc);
  let ent = find(set, pc, phys);
  if (!ent) ent = victim(set);
  if (!ent) {
    // Both ways hold compiled blocks. A start without one (JIT_NONE) does not push either out: it is counted again
    // and asked for again once hot. A compiled start takes the way whose block was not entered since the host's
    // eviction last looked (way 1 when both were): the other start then goes back to being counted, and is asked
    // for again (and installed without compiling) when hot; its region stays held, and exits that know its index
    // still enter it.
    if (slot == JIT_NONE) return;
    ent = usedMark(load<u32>(set, 24)) ? set + ENTRY_BYTES : set;
  }
  claim(ent, pc, phys, slot);
}

/** The host reuses table index `slot`, which held the block at (pc, phys): its entry goes, if it still names that
 *  slot (it may have been taken over by another block start since, or be stale: then it is left alone). */
export function jitEvict(pc: u64, phys: u64, slot: u32): void {
  const ent = find(setOf(pc), pc, phys);
  if (ent && load<u32>(ent, 24) == slot) claim(ent, 0, 0, 0);
  jitForgetJumps(); // its index may be reused at once
}

/** Whether a block was entered through table index `slot` since the last call (the host's eviction gives its
 *  region a second chance); clears the mark. */
export function jitUsed(slot: u32): bool {
  const at = JIT_USED + <usize>(slot & (JIT_USED_BYTES - 1));
  const used = load<u8>(at) != 0;
  store<u8>(at, 0);
  return used;
}

/** invalidations so far (the epoch less its start): for the host's statistics */
export function jitInvalidations(): u32 { return jitEpoch() - 1; }
