// The state of one switch port's link (the "cable" between a device and the switch): up or down, a one-way delay
// and a loss probability, applied to frames in both directions. And the per-port flood limiter.

export interface LinkConfig {
  /** down: the port neither sends nor receives (default up) */
  up: boolean;
  /** one-way delay in ms added to every frame crossing this link, each direction (default 0) */
  delayMs: number;
  /** probability in [0, 1] that a frame crossing this link is lost, each direction (default 0) */
  loss: number;
}

export class Link implements LinkConfig {
  up = true;
  delayMs = 0;
  loss = 0;
  /** called after a change of `up` through set() */
  onUpChange: ((up: boolean) => void) | undefined;

  constructor(cfg: Partial<LinkConfig> = {}) {
    this.set(cfg);
  }

  /** Changes some of the settings; throws on a bad value (and then changes nothing). */
  set(cfg: Partial<LinkConfig>): void {
    if (cfg.delayMs !== undefined && !(Number.isFinite(cfg.delayMs) && cfg.delayMs >= 0)) {
      throw new Error(`link delay must be a number of ms ≥ 0, not ${cfg.delayMs}`);
    }
    if (cfg.loss !== undefined && !(cfg.loss >= 0 && cfg.loss <= 1)) {
      throw new Error(`link loss must be a probability in [0, 1], not ${cfg.loss}`);
    }
    if (cfg.delayMs !== undefined) this.delayMs = cfg.delayMs;
    if (cfg.loss !== undefined) this.loss = cfg.loss;
    if (cfg.up !== undefined && cfg.up !== this.up) {
      this.up = cfg.up;
      this.onUpChange?.(cfg.up);
    }
  }

  get config(): LinkConfig {
    return { up: this.up, delayMs: this.delayMs, loss: this.loss };
  }

  /** decides whether one frame crossing the link is lost */
  drops(random: () => number): boolean {
    return this.loss > 0 && random() < this.loss;
  }
}

/**
 * At most `limit` frames per one-second window (fixed windows on the injected clock); the rest are refused.
 * limit = Infinity (or 0) disables it.
 */
export class FloodLimiter {
  private windowStart = -Infinity;
  private count = 0;

  constructor(public limit: number) {}

  /** true when one more frame at time `now` (ms) is allowed */
  allow(now: number): boolean {
    if (!(this.limit > 0) || this.limit === Infinity) return true;
    if (now - this.windowStart >= 1000 || now < this.windowStart) {
      this.windowStart = now;
      this.count = 0;
    }
    if (this.count >= this.limit) return false;
    this.count++;
    return true;
  }
}
