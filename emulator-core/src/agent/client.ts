// The host side of the control channel: run a command in the guest and get its exit status and output, put a file
// in, get a file out (protocol.ts says what goes over the wire). Used by Node (NodeVm.agent, the CLI and tests) and
// by the browser's VM worker (web/vm/vm-host.ts); the labs' checks are built on exec().
//
// Nothing the guest does can make a call hang: every request has a timeout (for a command, its own limit plus a
// grace period; for a transfer, a limit on time without progress) after which it fails with AgentNoAnswer, and a
// driver reset or a machine that goes away fails every request in flight. What the guest sends is bounded too:
// output beyond maxOutput is dropped (and said so), a file beyond maxBytes ends the transfer.

import {
  DATA_CHUNK, T, encodeFrame, execPayload, putPayload, FrameReader, type Frame,
} from "./protocol.ts";

/** The channel the client talks through (a VirtioConsole, or a test double). */
export interface AgentPort {
  /** queues bytes for the guest; false: full, nothing taken, onDrain follows */
  send(bytes: Uint8Array): boolean;
  onData: ((bytes: Uint8Array) => void) | null;
  onDrain: (() => void) | null;
  onReset: (() => void) | null;
  /** the guest's agent opened or closed its end (a close: it died, and what it had in hand is lost) */
  onGuestOpen: ((open: boolean) => void) | null;
}

export interface ExecResult {
  /** the exit code, or -1 when the command was killed by a signal */
  exitCode: number;
  /** the signal that ended it, or 0 */
  signal: number;
  /** the guest killed it when its time limit passed */
  timedOut: boolean;
  stdout: Uint8Array;
  stderr: Uint8Array;
  /** output beyond maxOutput was dropped */
  truncated: boolean;
}

export interface ExecOptions {
  /** the command's time limit in the guest (default 30 s); the call itself fails a little after it */
  timeoutMs?: number;
  /** most bytes kept of stdout and of stderr each (default 16 MiB) */
  maxOutput?: number;
  /** how long past timeoutMs the call waits for the guest's answer before it says "no answer" (default 5 s) */
  graceMs?: number;
}

export interface TransferOptions {
  /** fail when no progress was made for this long (default 15 s) */
  idleTimeoutMs?: number;
  /** progress: bytes so far, of total */
  onProgress?: (done: number, total: number) => void;
  /** stop early (the guest drops what it wrote) */
  signal?: AbortSignal;
}

/** The guest's agent did not answer in time (it is not running, or the guest is stuck or busy). */
export class AgentNoAnswer extends Error {}
/** The guest's agent answered with an error (errno and its message), e.g. a path that does not exist. */
export class AgentError extends Error {
  constructor(message: string, readonly errno: number) { super(message); }
}

/** how long a command may overrun its own limit before the call gives up on the guest */
const EXEC_GRACE_MS = 5000;
const DEFAULT_EXEC_TIMEOUT_MS = 30_000;
const DEFAULT_IDLE_MS = 15_000;
const DEFAULT_MAX_OUTPUT = 16 << 20;
/** GET refuses files larger than this by default */
const DEFAULT_MAX_GET = 1 << 30;

interface Pending {
  onFrame(f: Frame): void;
  fail(e: Error): void;
}

export class AgentClient {
  /** the version the agent said when it started or answered hello(), if it has */
  agentVersion: string | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly reader = new FrameReader();
  private drainWaiters: (() => void)[] = [];
  private helloWaiters: ((v: string) => void)[] = [];
  private closed: Error | null = null;

  /** wake: the machine's runner must look at its devices (the guest may be asleep in WFI). */
  constructor(private readonly port: AgentPort, private readonly wake: () => void = () => {}) {
    port.onData = (bytes) => this.reader.push(bytes, (f) => this.dispatch(f));
    port.onDrain = () => { const w = this.drainWaiters; this.drainWaiters = []; for (const f of w) f(); };
    port.onReset = () => this.failAll(new AgentNoAnswer("the guest reset its agent channel (a reboot?)"));
    port.onGuestOpen = (open) => { if (!open) this.failAll(new AgentNoAnswer("the guest agent stopped (init starts it again)")); };
  }

  /** Fails every request in flight and every later one (the machine is gone). */
  close(reason = "the VM stopped"): void {
    this.closed = new AgentNoAnswer(reason);
    this.failAll(this.closed);
    this.port.onData = this.port.onDrain = this.port.onReset = this.port.onGuestOpen = null;
  }

  /** Whether the agent runs: its version, or AgentNoAnswer after timeoutMs. A guest agent that starts later says
   *  hello by itself, which also answers this. */
  async hello(timeoutMs = 5000): Promise<string> {
    const id = this.id();
    const r = new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => { done(); reject(new AgentNoAnswer(`no answer from the guest agent in ${seconds(timeoutMs)}`)); }, timeoutMs);
      const finish = (v: string) => { done(); resolve(v); };
      const done = () => { clearTimeout(timer); this.pending.delete(id); this.helloWaiters = this.helloWaiters.filter((w) => w !== finish); };
      this.helloWaiters.push(finish);
      this.pending.set(id, { onFrame: (f) => { if (f.type === T.R_HELLO) finish(text(f.payload)); }, fail: (e) => { done(); reject(e); } });
    });
    await this.write(encodeFrame(T.HELLO, id));
    return r;
  }

  /** Runs `/bin/sh -c command` in the guest. Fails with AgentNoAnswer when the guest does not answer in time. */
  async exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    const limit = opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
    const max = opts.maxOutput ?? DEFAULT_MAX_OUTPUT;
    const wait = limit + (opts.graceMs ?? EXEC_GRACE_MS);
    const id = this.id();
    const out = new Collector(max), err = new Collector(max);
    const r = new Promise<ExecResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        this.send(encodeFrame(T.CANCEL, id));
        reject(new AgentNoAnswer(`no answer from the guest agent in ${seconds(wait)} (command: ${short(command)})`));
      }, wait);
      const end = () => { clearTimeout(timer); this.pending.delete(id); };
      this.pending.set(id, {
        onFrame: (f) => {
          if (f.type === T.STDOUT) out.add(f.payload);
          else if (f.type === T.STDERR) err.add(f.payload);
          else if (f.type === T.EXIT && f.payload.length >= 12) {
            end();
            const dv = view(f.payload);
            resolve({
              exitCode: dv.getInt32(0, true), signal: dv.getInt32(4, true), timedOut: dv.getUint32(8, true) !== 0,
              stdout: out.bytes(), stderr: err.bytes(), truncated: out.truncated || err.truncated,
            });
          } else if (f.type === T.ERR) { end(); reject(agentError(f)); }
        },
        fail: (e) => { end(); reject(e); },
      });
    });
    await this.write(encodeFrame(T.EXEC, id, execPayload(command, limit)));
    return r;
  }

  /** Writes `data` to `path` in the guest (made whole at the end: the file appears only when all of it is there). */
  async putFile(path: string, data: Uint8Array, opts: TransferOptions & { mode?: number } = {}): Promise<void> {
    const id = this.id();
    const idle = new IdleTimer(opts.idleTimeoutMs ?? DEFAULT_IDLE_MS);
    let fail!: (e: Error) => void;
    const r = new Promise<void>((resolve, reject) => {
      fail = (e) => { idle.stop(); this.pending.delete(id); reject(e); };
      this.pending.set(id, {
        onFrame: (f) => {
          idle.touch();
          if (f.type === T.OK) { idle.stop(); this.pending.delete(id); resolve(); }
          else if (f.type === T.ERR) fail(agentError(f));
        },
        fail,
      });
      idle.start(() => { this.send(encodeFrame(T.CANCEL, id)); fail(new AgentNoAnswer(`no progress writing ${path} in the guest for ${seconds(idle.ms)}`)); });
    });
    r.catch(() => {}); // awaited below; a failure while still sending must not go unhandled meanwhile
    await this.write(encodeFrame(T.PUT, id, putPayload(path, data.length, opts.mode ?? 0o644)));
    for (let at = 0; at < data.length && this.pending.has(id); at += DATA_CHUNK) {
      if (opts.signal?.aborted) {
        this.send(encodeFrame(T.CANCEL, id));
        fail(new AgentError(`writing ${path} was cancelled`, 0));
        break;
      }
      await this.write(encodeFrame(T.DATA, id, data.subarray(at, Math.min(data.length, at + DATA_CHUNK))));
      idle.touch();
      opts.onProgress?.(Math.min(data.length, at + DATA_CHUNK), data.length);
    }
    if (this.pending.has(id)) await this.write(encodeFrame(T.END, id));
    return r;
  }

  /** Reads `path` from the guest. Fails with AgentError when the guest cannot (no such file, a directory). */
  async getFile(path: string, opts: TransferOptions & { maxBytes?: number } = {}): Promise<Uint8Array> {
    const id = this.id();
    const max = opts.maxBytes ?? DEFAULT_MAX_GET;
    const idle = new IdleTimer(opts.idleTimeoutMs ?? DEFAULT_IDLE_MS);
    const r = new Promise<Uint8Array>((resolve, reject) => {
      let buf: Uint8Array | null = null;
      let at = 0;
      const end = () => { idle.stop(); this.pending.delete(id); opts.signal?.removeEventListener("abort", abort); };
      const cancel = (e: Error) => { this.send(encodeFrame(T.CANCEL, id)); end(); reject(e); };
      const abort = () => cancel(new AgentError(`reading ${path} was cancelled`, 0));
      opts.signal?.addEventListener("abort", abort);
      this.pending.set(id, {
        onFrame: (f) => {
          idle.touch();
          if (f.type === T.SIZE && f.payload.length >= 8 && !buf) {
            const size = Number(view(f.payload).getBigUint64(0, true));
            if (size > max) return cancel(new AgentError(`${path} is ${size} bytes, more than the ${max} allowed`, 27 /* EFBIG */));
            buf = new Uint8Array(size);
          } else if (f.type === T.R_DATA && buf) {
            if (at + f.payload.length > buf.length) return cancel(new AgentError(`${path} grew while it was read`, 0));
            buf.set(f.payload, at);
            at += f.payload.length;
            opts.onProgress?.(at, buf.length);
          } else if (f.type === T.R_END && buf) {
            end();
            // A file that shrank while it was read ends early: what came is what the file held.
            resolve(at === buf.length ? buf : buf.slice(0, at));
          } else if (f.type === T.ERR) { end(); reject(agentError(f)); }
        },
        fail: (e) => { end(); reject(e); },
      });
      idle.start(() => cancel(new AgentNoAnswer(`no progress reading ${path} from the guest for ${seconds(idle.ms)}`)));
    });
    await this.write(encodeFrame(T.GET, id, new TextEncoder().encode(path)));
    return r;
  }

  private id(): number {
    if (this.closed) throw this.closed;
    const id = this.nextId;
    this.nextId = this.nextId >= 0x7fffffff ? 1 : this.nextId + 1;
    return id;
  }

  /** Sends a frame now if the channel takes it (CANCEL: best effort, never waits). */
  private send(frame: Uint8Array): boolean {
    if (this.closed) return false;
    const ok = this.port.send(frame);
    if (ok) this.wake();
    return ok;
  }

  /** Sends a frame, waiting while the channel is full. */
  private async write(frame: Uint8Array): Promise<void> {
    while (!this.send(frame)) {
      if (this.closed) throw this.closed;
      await new Promise<void>((r) => this.drainWaiters.push(r));
    }
  }

  private dispatch(f: Frame): void {
    if (f.type === T.R_HELLO) {
      this.agentVersion = text(f.payload);
      if (f.id === 0) {
        // The agent (re)started: it answers the hello() calls waiting for it. Requests sent meanwhile were held for
        // it and it answers them too (what an agent that died had in hand failed when it closed the port).
        for (const h of [...this.helloWaiters]) h(this.agentVersion);
        return;
      }
    }
    this.pending.get(f.id)?.onFrame(f);
  }

  private failAll(e: Error): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.fail(e);
    const w = this.drainWaiters; this.drainWaiters = [];
    for (const f of w) f();
  }
}

/** Output kept up to a limit. */
class Collector {
  truncated = false;
  private parts: Uint8Array[] = [];
  private n = 0;
  constructor(private readonly max: number) {}
  add(b: Uint8Array): void {
    const room = this.max - this.n;
    if (b.length > room) this.truncated = true;
    if (room <= 0) return;
    const take = b.length > room ? b.subarray(0, room) : b;
    this.parts.push(take);
    this.n += take.length;
  }
  bytes(): Uint8Array {
    const out = new Uint8Array(this.n);
    let at = 0;
    for (const p of this.parts) { out.set(p, at); at += p.length; }
    return out;
  }
}

/** Fires when touch() was not called for `ms`. */
class IdleTimer {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private fire: (() => void) | undefined;
  constructor(readonly ms: number) {}
  start(fire: () => void): void { this.fire = fire; this.touch(); }
  touch(): void {
    const fire = this.fire;
    if (!fire) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => { this.fire = undefined; fire(); }, this.ms);
  }
  stop(): void { clearTimeout(this.timer); this.fire = undefined; }
}

function agentError(f: Frame): AgentError {
  const errno = f.payload.length >= 4 ? view(f.payload).getInt32(0, true) : 0;
  return new AgentError(`guest: ${text(f.payload.subarray(4)) || "error"}`, errno);
}

const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
const text = (b: Uint8Array) => new TextDecoder().decode(b);
const seconds = (ms: number) => `${(ms / 1000).toFixed(ms % 1000 ? 1 : 0)} s`;
const short = (s: string) => (s.length > 60 ? s.slice(0, 57) + "..." : s);
