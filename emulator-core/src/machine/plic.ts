// The platform-level interrupt controller (SiFive PLIC layout, as on QEMU's virt board), one hart with two
// contexts: 0 = M-mode external interrupt (MEIP), 1 = S-mode (SEIP). Linux drives context 1.
// Sources are level-triggered: a source is pending while its line is high and it is not being serviced.

import type { MmioDevice } from "./bus.ts";
import type { IrqLine } from "./guest-memory.ts";
import { SnapshotError, StateReader, type StateValue, type Stateful } from "../snapshot/state-value.ts";

export const PLIC_SIZE = 0x600000;
const SOURCES = 32; // source 0 does not exist
const CONTEXTS = 2;

export class Plic implements MmioDevice, Stateful {
  readonly size = PLIC_SIZE;
  private readonly priority = new Uint32Array(SOURCES);
  private readonly level = new Uint8Array(SOURCES);
  private readonly claimed = new Uint8Array(SOURCES); // claimed and not yet completed
  private readonly enable = new Uint32Array(CONTEXTS);
  private readonly threshold = new Uint32Array(CONTEXTS);
  /** Called with the external-interrupt lines of the two contexts whenever they may have changed. */
  constructor(private readonly onChange: (meip: boolean, seip: boolean) => void) {}

  /** The interrupt line of source n (1..31). */
  line(n: number): IrqLine {
    if (n < 1 || n >= SOURCES) throw new RangeError(`PLIC source ${n} does not exist`);
    return { set: (on: boolean) => { this.level[n] = on ? 1 : 0; this.update(); } };
  }

  /**
   * Per source (index 0 unused): priority, line level, claimed-and-not-completed; per context: enable bits and
   * threshold. The levels are saved too, so the PLIC is whole on its own; the devices restored after it drive
   * their lines again with their own restored levels, which then agree with these.
   */
  saveState(): StateValue {
    return {
      priority: Uint8Array.from(this.priority),
      level: this.level.slice(),
      claimed: this.claimed.slice(),
      contexts: Array.from({ length: CONTEXTS }, (_, c) => ({ enable: this.enable[c], threshold: this.threshold[c] })),
    };
  }

  /** Restores saveState()'s output and recomputes the MEIP/SEIP lines from it. */
  restoreState(state: StateValue): void {
    const r = new StateReader(state, "plic");
    const priority = perSource(r, "priority", 7);
    const level = perSource(r, "level", 1);
    const claimed = perSource(r, "claimed", 1);
    const list = r.array("contexts", CONTEXTS);
    if (list.length !== CONTEXTS) throw new SnapshotError(`plic.contexts: expected ${CONTEXTS} contexts, got ${list.length}`);
    const contexts = list.map((v, c) => {
      const cr = new StateReader(v, `plic.contexts[${c}]`);
      const enable = cr.num("enable", 0, 0xffffffff);
      if (enable & 1) throw new SnapshotError(`plic.contexts[${c}].enable: source 0 does not exist`);
      return { enable, threshold: cr.num("threshold", 0, 7) };
    });
    this.priority.set(priority);
    this.level.set(level);
    this.claimed.set(claimed);
    contexts.forEach((c, i) => { this.enable[i] = c.enable; this.threshold[i] = c.threshold; });
    this.update();
  }

  private pendingMask(): number {
    let m = 0;
    for (let i = 1; i < SOURCES; i++) if (this.level[i] && !this.claimed[i]) m |= 1 << i;
    return m >>> 0;
  }

  /** Highest-priority pending enabled source above the threshold for a context, or 0. */
  private best(ctx: number): number {
    const cand = this.pendingMask() & this.enable[ctx];
    let best = 0, bestPrio = this.threshold[ctx];
    for (let i = 1; i < SOURCES; i++) {
      if ((cand >>> i) & 1 && this.priority[i] > bestPrio) { best = i; bestPrio = this.priority[i]; }
    }
    return best;
  }

  private update(): void { this.onChange(this.best(0) !== 0, this.best(1) !== 0); }

  read(offset: number, size: 1 | 2 | 4): number {
    if (size !== 4 || offset & 3) return 0;
    if (offset < 0x1000) return this.priority[offset >> 2] ?? 0;
    if (offset === 0x1000) return this.pendingMask();
    if (offset >= 0x2000 && offset < 0x2000 + 0x80 * CONTEXTS) {
      const ctx = (offset - 0x2000) >> 7;
      return (offset & 0x7f) === 0 ? this.enable[ctx] : 0;
    }
    if (offset >= 0x200000 && offset < 0x200000 + 0x1000 * CONTEXTS) {
      const ctx = (offset - 0x200000) >> 12;
      const reg = offset & 0xfff;
      if (reg === 0) return this.threshold[ctx];
      if (reg === 4) { // claim
        const src = this.best(ctx);
        if (src) this.claimed[src] = 1;
        this.update();
        return src;
      }
    }
    return 0;
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    if (size !== 4 || offset & 3) return;
    if (offset < 0x1000) {
      const n = offset >> 2;
      if (n > 0 && n < SOURCES) this.priority[n] = value & 7;
    } else if (offset >= 0x2000 && offset < 0x2000 + 0x80 * CONTEXTS) {
      const ctx = (offset - 0x2000) >> 7;
      if ((offset & 0x7f) === 0) this.enable[ctx] = value & ~1;
    } else if (offset >= 0x200000 && offset < 0x200000 + 0x1000 * CONTEXTS) {
      const ctx = (offset - 0x200000) >> 12;
      const reg = offset & 0xfff;
      if (reg === 0) this.threshold[ctx] = value & 7;
      else if (reg === 4 && value > 0 && value < SOURCES) this.claimed[value] = 0; // complete
    } else return;
    this.update();
  }
}

/** One byte per source, each at most `max`, and 0 for the nonexistent source 0. */
function perSource(r: StateReader, key: string, max: number): Uint8Array {
  const a = r.bytes(key, { length: SOURCES });
  const bad = a.findIndex((v, i) => v > max || (i === 0 && v !== 0));
  if (bad >= 0) throw new SnapshotError(`${r.where}.${key}[${bad}]: ${a[bad]} is out of range`);
  return a;
}
