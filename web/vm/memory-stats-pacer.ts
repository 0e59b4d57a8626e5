// When the worker asks the guest for its memory statistics (virtio-balloon's stats queue, for the page's memory
// meter). Each request wakes an idle guest, restarts its stopped tick and runs its balloon driver's work: about 0.2%
// of a core at one request a second, against 0.1% for everything else an idle VM does. So they are asked for every
// MIN_MS while the guest's memory moves or the guest runs, and ever more rarely, doubling up to MAX_MS, while it holds
// still and idles: an idle guest's memory has nothing to move it, and a guest that starts work is asked again within
// MIN_MS of running BUSY_INSTRUCTIONS.

export const MEM_STATS_MIN_MS = 1000;
export const MEM_STATS_MAX_MS = 60_000;
/** memory that moved less than this between two answers held still */
export const MEM_STATS_STILL = 1 << 20;
/** An idle guest runs 5-20 thousand instructions a second (its timer ticks and housekeeping); a command typed at
 *  its shell runs millions. */
export const MEM_STATS_BUSY_INSTRUCTIONS = 5_000_000n;

export class MemoryStatsPacer {
  private askedAt = -Infinity;
  private every = MEM_STATS_MIN_MS;
  private lastAvailable: number | undefined;
  private instretAtAsk = 0n;

  /** Whether to ask now, given the host's clock (ms), the guest's retired instructions and its last answer's
   *  available memory (bytes; undefined before any answer). A true answer counts as the ask. */
  due(nowMs: number, instret: bigint, available: number | undefined): boolean {
    if (nowMs - this.askedAt < MEM_STATS_MIN_MS) return false;
    // (a count that went back: the guest rebooted or another machine was restored, which moves memory too)
    const ranFor = instret - this.instretAtAsk;
    const ran = ranFor < 0n || ranFor >= MEM_STATS_BUSY_INSTRUCTIONS;
    if (!ran && nowMs - this.askedAt < this.every) return false;
    const still = available !== undefined && this.lastAvailable !== undefined && Math.abs(available - this.lastAvailable) < MEM_STATS_STILL;
    this.every = still && !ran ? Math.min(MEM_STATS_MAX_MS, this.every * 2) : MEM_STATS_MIN_MS;
    this.lastAvailable = available;
    this.askedAt = nowMs;
    this.instretAtAsk = instret;
    return true;
  }

  /** The guest's memory is about to move (a new balloon target): ask at once, then at the quick pace. */
  quicken(): void {
    this.every = MEM_STATS_MIN_MS;
    this.askedAt = -Infinity;
  }
}
