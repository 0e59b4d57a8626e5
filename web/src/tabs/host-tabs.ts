// The browser's tabs of this page as the hosts of one small cluster (what live migration moves VMs between). Each
// tab takes a number ("Tab 2") by holding a Web Lock of that name for as long as it is open, so two tabs never share
// a number and a closed (or crashed) tab's number frees itself; which tabs are open is asked of the lock manager,
// so no tab sends heartbeats and an idle page stays idle. A BroadcastChannel carries requests from one tab to
// another (a migration offer) with their answers, and hellos that make the other tabs look again.

export interface TabPeer {
  n: number;
  /** "Tab 2" */
  name: string;
}

/** The part of navigator.locks used here. */
export interface LocksLike {
  request(name: string, opts: { ifAvailable?: boolean; signal?: AbortSignal }, cb: (lock: unknown) => Promise<unknown> | unknown): Promise<unknown>;
  query(): Promise<{ held?: { name?: string }[] }>;
}

export interface HostTabsEnv {
  locks?: LocksLike;
  BroadcastChannel?: typeof BroadcastChannel;
  /** the channel's name (tests keep theirs apart) */
  channel?: string;
  /** the locks' name prefix */
  lockPrefix?: string;
}

type Wire =
  | { kind: "hello"; from: number }
  | { kind: "bye"; from: number }
  | { kind: "req"; from: number; to: number; id: number; body: unknown }
  | { kind: "res"; from: number; to: number; id: number; ok: true; body: unknown }
  | { kind: "res"; from: number; to: number; id: number; ok: false; error: string };

/** At most this many tabs are numbered. */
const MAX_TABS = 64;

export const tabName = (n: number) => `Tab ${n}`;

/** Takes the lock `name` and holds it until `release` is called (or the page goes away); false when another tab
 *  holds it (after waiting up to `waitMs` for it: a page being reloaded lets its locks go a moment later). */
export async function holdLock(locks: LocksLike, name: string, waitMs = 0): Promise<{ release(): void } | undefined> {
  let release!: () => void;
  const held = new Promise<void>((r) => { release = r; });
  const got = await new Promise<boolean>((resolve) => {
    const opts = waitMs > 0 ? { signal: AbortSignal.timeout(waitMs) } : { ifAvailable: true };
    locks.request(name, opts, (lock) => {
      if (!lock) { resolve(false); return undefined; }
      resolve(true);
      return held;
    }).catch(() => resolve(false)); // the wait timed out
  });
  return got ? { release } : undefined;
}

export class HostTabs {
  private peerList: TabPeer[] = [];
  private readonly listeners = new Set<() => void>();
  private readonly bc: BroadcastChannel;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: ReturnType<typeof setTimeout> }>();
  private disposed = false;
  /** answers another tab's request (a rejection is sent back as its error) */
  onRequest: ((from: TabPeer, body: unknown) => Promise<unknown>) | undefined;

  private constructor(readonly self: TabPeer, private readonly locks: LocksLike, private readonly lockPrefix: string,
    private readonly releaseLock: () => void, BC: typeof BroadcastChannel, channel: string) {
    this.bc = new BC(channel);
    this.bc.onmessage = (ev: MessageEvent) => this.receive(ev.data as Wire);
    this.post({ kind: "hello", from: self.n });
  }

  /** Takes this tab's number; undefined where the browser has no Web Locks or BroadcastChannel (no migration). */
  static async open(env: HostTabsEnv = {}): Promise<HostTabs | undefined> {
    const locks = env.locks ?? (typeof navigator !== "undefined" ? (navigator as { locks?: LocksLike }).locks : undefined);
    const BC = env.BroadcastChannel ?? (typeof BroadcastChannel !== "undefined" ? BroadcastChannel : undefined);
    if (!locks || !BC) return undefined;
    const prefix = env.lockPrefix ?? "tabvisor-tab-";
    for (let n = 1; n <= MAX_TABS; n++) {
      const lock = await holdLock(locks, prefix + n);
      if (lock) {
        const tabs = new HostTabs({ n, name: tabName(n) }, locks, prefix, lock.release, BC, env.channel ?? "tabvisor-tabs");
        await tabs.refresh();
        return tabs;
      }
    }
    return undefined;
  }

  /** The other open tabs, as last looked up. */
  peers(): TabPeer[] { return this.peerList; }

  /** Looks up which tabs are open now. */
  async refresh(): Promise<TabPeer[]> {
    const q = await this.locks.query();
    const ns = new Set<number>();
    for (const l of q.held ?? []) {
      const m = l.name?.startsWith(this.lockPrefix) ? /^\d+$/.exec(l.name.slice(this.lockPrefix.length)) : null;
      if (m && Number(m[0]) !== this.self.n) ns.add(Number(m[0]));
    }
    const list = [...ns].sort((a, b) => a - b).map((n) => ({ n, name: tabName(n) }));
    if (list.map((p) => p.n).join() !== this.peerList.map((p) => p.n).join()) {
      this.peerList = list;
      for (const fn of this.listeners) fn();
    }
    return list;
  }

  subscribe = (fn: () => void): (() => void) => {
    this.listeners.add(fn);
    return () => { this.listeners.delete(fn); };
  };

  /** Asks tab `to` something; resolves with its answer, rejects with its refusal or when it does not answer. */
  request<T>(to: number, body: unknown, timeoutMs = 10_000): Promise<T> {
    if (this.disposed) return Promise.reject(new Error("this tab is closing"));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${tabName(to)} did not answer (is it still open?)`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.post({ kind: "req", from: this.self.n, to, id, body });
    });
  }

  private receive(w: Wire): void {
    if (!w || typeof w !== "object" || this.disposed) return;
    if (w.kind === "hello") { void this.refresh(); return; }
    // a closing tab lets its lock go just after saying so
    if (w.kind === "bye") { setTimeout(() => void this.refresh(), 100); return; }
    if (w.to !== this.self.n) return;
    if (w.kind === "res") {
      const p = this.pending.get(w.id);
      if (!p) return;
      this.pending.delete(w.id);
      clearTimeout(p.timer);
      if (w.ok) p.resolve(w.body);
      else p.reject(new Error(w.error));
      return;
    }
    const from = { n: w.from, name: tabName(w.from) };
    const answer = (r: Wire) => { if (!this.disposed) this.post(r); };
    const handler = this.onRequest;
    if (!handler) { answer({ kind: "res", from: this.self.n, to: w.from, id: w.id, ok: false, error: `${this.self.name} is not ready yet` }); return; }
    handler(from, w.body).then(
      (body) => answer({ kind: "res", from: this.self.n, to: w.from, id: w.id, ok: true, body }),
      (e: unknown) => answer({ kind: "res", from: this.self.n, to: w.from, id: w.id, ok: false, error: (e as Error)?.message ?? String(e) }),
    );
  }

  private post(w: Wire): void { this.bc.postMessage(w); }

  /** Leaves: the number is free again and the other tabs look again. */
  dispose(): void {
    if (this.disposed) return;
    this.post({ kind: "bye", from: this.self.n });
    this.disposed = true;
    this.releaseLock();
    for (const p of this.pending.values()) { clearTimeout(p.timer); p.reject(new Error("this tab is closing")); }
    this.pending.clear();
    this.bc.close();
  }
}
