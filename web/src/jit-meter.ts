// The JIT's figures in a VM's meters panel and its setting's hint (Dashboard.tsx): what the text says, apart from the
// drawing, so that it is the same wherever it shows and can be checked without a page.

import { fmtPct, type LiveField, type Sample } from "./meters.ts";

/** The JIT meter's live figures (meter-jit-now, -sub, and its data-value), from the last sample: compile time as a
 *  share of the worker's busy time, then the blocks compiled and the share of instructions run as compiled code
 *  ("idle" while the guest runs too little for a share to mean anything). */
export function jitFields(l: Sample | undefined): LiveField[] {
  const on = l?.jitCompile !== undefined;
  const share = l?.jitShare === undefined ? "guest idle" : `${fmtPct(l.jitShare)}% of instructions compiled`;
  return [
    ["meter-jit-now", "text", on ? `${fmtPct(l.jitCompile!)}% compiling` : "—"],
    ["meter-jit", "data", on ? fmtPct(l.jitCompile!) : ""],
    ["meter-jit-sub", "text", on ? `${l.jitBlocks ?? 0} blocks compiled · ${share}` : ""],
  ];
}

/** What the JIT setting says beside its box: `wanted` is the VM's setting, `now` whether the machine running has
 *  the JIT (undefined: none runs). A change waits for the next start, and says so until then. */
export function jitHint(wanted: boolean, now: boolean | undefined): string {
  if (now !== undefined && now !== wanted) return `${wanted ? "on" : "off"} from the next start (Reset, or power off and on)`;
  return wanted ? "hot code compiled to WebAssembly" : "off: the interpreter";
}
