// A live migration's messages (migration.ts) over a channel whose other end may vanish: a tab that is closed, a
// worker that crashes. The source numbers its messages and the target acknowledges each once it has taken it in;
// the source keeps at most `window` unacknowledged, so a slow target holds the copying back instead of letting all
// of RAM pile up in the channel, and it gives up when an acknowledgement is overdue. After the last message the
// target builds the machine and says "done" (or why it could not); only then may the source let its machine go.
//
// Any channel that keeps order and delivers whole messages will do: a BroadcastChannel between tabs (both ends
// are workers), a MessagePort, a function call in a test.

import type { MigrationMessage, MigrationTarget } from "./migration.ts";
import type { Machine } from "../machine/machine.ts";

export type LinkMessage =
  /** source → target: a migration message, with the console's last lines along with the end */
  | { t: "data"; seq: number; m: MigrationMessage; console?: string }
  /** target → source: message `seq` is taken in */
  | { t: "ack"; seq: number }
  /** target → source: the machine is built and runs here now */
  | { t: "done" }
  /** either way: the migration is off (the source's guest runs on where it was) */
  | { t: "fail"; why: string };

export interface LinkPort {
  post(m: LinkMessage): void;
  /** `fn` hears every message from the other end */
  listen(fn: (m: LinkMessage) => void): void;
  close(): void;
}

/** A LinkPort over a BroadcastChannel of that name (it never hears its own messages). */
export function broadcastPort(name: string, BC: typeof BroadcastChannel = BroadcastChannel): LinkPort {
  const bc = new BC(name);
  return {
    post: (m) => bc.postMessage(m),
    listen: (fn) => { bc.onmessage = (ev: MessageEvent) => fn(ev.data as LinkMessage); },
    close: () => bc.close(),
  };
}

const duration = (ms: number) => (ms >= 1000 ? `${Math.round(ms / 1000)} s` : `${Math.round(ms)} ms`);

/** Thrown when the other end gives up or goes quiet. */
export class MigrationLinkError extends Error {}

export interface SenderOptions {
  /** unacknowledged messages at most (default 4) */
  window?: number;
  /** an acknowledgement later than this ends the migration (default 10 000 ms) */
  ackTimeoutMs?: number;
  /** the target's "done" later than this after the last message ends it (default 30 000 ms) */
  doneTimeoutMs?: number;
}

/** The source's end: `send` is what migrateOut calls; `finished` waits for the target's "done". */
export class MigrationSender {
  private next = 0;
  private acked = -1;
  private failure: Error | undefined;
  private done = false;
  private wake: (() => void) | undefined;
  private readonly window: number;
  private readonly ackTimeoutMs: number;
  private readonly doneTimeoutMs: number;

  constructor(private readonly port: LinkPort, opts: SenderOptions = {}) {
    this.window = Math.max(1, opts.window ?? 4);
    this.ackTimeoutMs = opts.ackTimeoutMs ?? 10_000;
    this.doneTimeoutMs = opts.doneTimeoutMs ?? 30_000;
    port.listen((m) => {
      if (m.t === "ack" && m.seq > this.acked) this.acked = m.seq;
      else if (m.t === "done") this.done = true;
      else if (m.t === "fail") this.failure ??= new MigrationLinkError(m.why);
      else return;
      this.wake?.();
    });
  }

  /** Posts one message; resolves once the window has room for the next. */
  send = async (m: MigrationMessage, console?: string): Promise<void> => {
    this.check();
    const seq = this.next++;
    this.port.post(console === undefined ? { t: "data", seq, m } : { t: "data", seq, m, console });
    await this.until(() => seq - this.acked < this.window, this.ackTimeoutMs, "acknowledge the migration's data");
  };

  /** Resolves when the target runs the machine; rejects when it failed or did not answer in time. */
  async finished(): Promise<void> {
    await this.until(() => this.done, this.doneTimeoutMs, "start the migrated machine");
  }

  /** Tells the target the migration is off. */
  abort(why: string): void {
    if (!this.done) this.port.post({ t: "fail", why });
  }

  private check(): void {
    if (this.failure) throw this.failure;
  }

  private async until(ok: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      this.check();
      if (ok()) return;
      const left = deadline - performance.now();
      if (left <= 0) throw new MigrationLinkError(`the other tab did not ${what} within ${duration(timeoutMs)}`);
      await new Promise<void>((r) => {
        const timer = setTimeout(r, left);
        this.wake = () => { clearTimeout(timer); this.wake = undefined; r(); };
      });
    }
  }
}

export interface Arrival {
  machine: Machine;
  /** the source's console lines at the end */
  console?: string;
}

export interface ReceiverOptions {
  /** no message for this long ends the migration (default 15 000 ms) */
  idleTimeoutMs?: number;
}

/** The target's end: feeds the messages in order into a MigrationTarget and acknowledges each. `arrival` settles
 *  with the machine (the embedder then calls confirm() once it runs it) or with why it did not come. */
export class MigrationReceiver {
  readonly arrival: Promise<Arrival>;
  private expected = 0;
  private chain: Promise<void> = Promise.resolve();
  private settled = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private resolve!: (a: Arrival) => void;
  private reject!: (e: Error) => void;

  constructor(private readonly port: LinkPort, private readonly target: MigrationTarget, private readonly opts: ReceiverOptions = {}) {
    this.arrival = new Promise<Arrival>((res, rej) => { this.resolve = res; this.reject = rej; });
    this.arrival.catch(() => {}); // the embedder may look later
    this.armTimer();
    port.listen((m) => {
      if (this.settled) return;
      if (m.t === "fail") { this.end(new MigrationLinkError(`the source gave up: ${m.why}`)); return; }
      if (m.t !== "data") return;
      this.armTimer();
      if (m.seq !== this.expected) { this.fail(`migration message ${m.seq} arrived where ${this.expected} was due`); return; }
      this.expected++;
      this.chain = this.chain.then(async () => {
        if (this.settled) return;
        try {
          const machine = await this.target.receive(m.m);
          this.port.post({ t: "ack", seq: m.seq });
          if (machine) { this.settle(); this.resolve({ machine, console: m.console }); }
        } catch (e) {
          this.fail((e as Error).message);
        }
      });
    });
  }

  /** The machine runs here now: the source may let its copy go. */
  confirm(): void { this.port.post({ t: "done" }); }

  /** This end gives up (the source's guest runs on there). */
  fail(why: string): void {
    if (this.settled) return;
    this.port.post({ t: "fail", why });
    this.end(new MigrationLinkError(why));
  }

  private end(e: Error): void {
    this.settle();
    this.reject(e);
  }

  private settle(): void {
    this.settled = true;
    clearTimeout(this.timer);
  }

  private armTimer(): void {
    clearTimeout(this.timer);
    const ms = this.opts.idleTimeoutMs ?? 15_000;
    this.timer = setTimeout(() => this.fail(`no migration data came for ${duration(ms)}`), ms);
  }
}
