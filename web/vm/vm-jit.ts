// What a VM worker reads of its machine's JIT (emulator-core/src/jit/tier.ts) for the page's meters, through the
// JIT's public counters only: the compiler underneath is being rewritten, these stay.

import type { Machine } from "../../emulator-core/src/machine/machine.ts";
import type { VmJitStats } from "../shared/protocol.ts";

/** The machine was built with the JIT (a hart's JIT, once on, stays on for the machine's life). */
export const hasJit = (m: Machine): boolean => m.hart.jit !== undefined;

/** The JIT's counters, or undefined for a machine without one. */
export function jitStats(m: Machine): VmJitStats | undefined {
  const jit = m.hart.jit;
  if (!jit) return undefined;
  // compile time on the VM's thread and on its compiler thread: both are the VM's CPU
  return { compiled: jit.stats.compiled, compileMs: jit.stats.compileMs + jit.stats.offThreadMs, instret: jit.calls.instructions };
}
