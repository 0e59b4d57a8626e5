// A VM's meters: once a second the page takes the worker's counters (VmStats) and turns the difference from the
// previous sample into rates, kept for the last HISTORY_SECONDS as plain arrays (uPlot draws them as they are).
//
// Sources:
//   CPU      host time the worker spent running the guest (Machine.busyMs) per second of the worker's clock; the
//            rest it sleeps in Atomics.wait (guest in WFI, paused, or held back by its CPU cap)
//   MIPS     guest instructions retired (hart instret) per second
//   memory   the guest's own numbers from the virtio-balloon statistics queue: in use = MemTotal - MemAvailable,
//            less the pages in the balloon when the guest counts them in MemTotal (deflate-on-OOM); the balloon's
//            size is the driver's `actual`. Until the guest reports, memory shows no value (the emulator cannot see
//            which guest pages are in use).
//   disk     virtio-blk bytes read and written per second
//   network  virtio-net bytes and packets per second, all cards summed (0 while the VM has no card)
//   JIT      with the JIT on (VmStats.jit): host ms spent compiling per ms the worker was busy (compiling is part of
//            busyMs), the blocks compiled so far, and guest instructions retired in compiled code per instruction
//            retired; no value without it

import { useEffect, useLayoutEffect, useRef, useState, type RefObject } from "react";
import type { VmStats } from "../shared/protocol.ts";

export const HISTORY_SECONDS = 300;
const MiB = 1024 * 1024;

export interface Sample {
  /** unix seconds */
  t: number;
  cpu: number;
  mips: number;
  /** guest memory in use (MiB), undefined until the guest reports */
  memUsed?: number;
  /** memory the guest can use: RAM less the balloon (MiB) */
  memAvail?: number;
  /** guest free memory as it reports it (MiB) */
  memFree?: number;
  /** MiB in the balloon (given back to the host) */
  balloon: number;
  diskRead: number;
  diskWrite: number;
  netRx: number;
  netTx: number;
  netRxPkts: number;
  netTxPkts: number;
  /** ms the worker held the guest back for its CPU cap, per second */
  throttled: number;
  /** with the JIT on: percent of the worker's busy time spent compiling, blocks compiled in all, and percent of the
   *  guest's instructions that ran as compiled code */
  jitCompile?: number;
  jitBlocks?: number;
  jitShare?: number;
}

export class MeterHistory {
  readonly t: number[] = [];
  readonly cpu: number[] = [];
  readonly mips: number[] = [];
  readonly memUsed: (number | null)[] = [];
  readonly memAvail: (number | null)[] = [];
  readonly memFree: (number | null)[] = [];
  readonly balloon: number[] = [];
  readonly diskRead: number[] = [];
  readonly diskWrite: number[] = [];
  readonly netRx: number[] = [];
  readonly netTx: number[] = [];
  readonly netRxPkts: number[] = [];
  readonly netTxPkts: number[] = [];
  readonly throttled: number[] = [];
  readonly jitCompile: (number | null)[] = [];
  readonly jitShare: (number | null)[] = [];
  last: Sample | undefined;

  push(s: Sample): void {
    this.last = s;
    this.t.push(s.t);
    this.cpu.push(s.cpu);
    this.mips.push(s.mips);
    this.memUsed.push(s.memUsed ?? null);
    this.memAvail.push(s.memAvail ?? null);
    this.memFree.push(s.memFree ?? null);
    this.balloon.push(s.balloon);
    this.diskRead.push(s.diskRead);
    this.diskWrite.push(s.diskWrite);
    this.netRx.push(s.netRx);
    this.netTx.push(s.netTx);
    this.netRxPkts.push(s.netRxPkts);
    this.netTxPkts.push(s.netTxPkts);
    this.throttled.push(s.throttled);
    this.jitCompile.push(s.jitCompile ?? null);
    this.jitShare.push(s.jitShare ?? null);
    if (this.t.length > HISTORY_SECONDS) {
      for (const col of [this.t, this.cpu, this.mips, this.memUsed, this.memAvail, this.memFree, this.balloon, this.diskRead,
        this.diskWrite, this.netRx, this.netTx, this.netRxPkts, this.netTxPkts, this.throttled, this.jitCompile, this.jitShare]) col.shift();
    }
  }
}

/** A counter's growth, or its value when it went backwards (the guest was rebooted: counters start over). */
const grew = (cur: number, prev: number) => (cur >= prev ? cur - prev : cur);

/** The sample between two stats of the same worker; `ramMiB` is the VM's RAM. */
export function sampleBetween(prev: VmStats, cur: VmStats, ramMiB: number): Sample {
  const dt = Math.max(1, cur.atMs - prev.atMs);
  const perSec = (d: number) => (d * 1000) / dt;
  const b = cur.balloon;
  const balloonMiB = b ? (b.actualPages * 4096) / MiB : 0;
  let memUsed: number | undefined;
  let memFree: number | undefined;
  if (b?.memTotal !== undefined && (b.memAvailable ?? b.memFree) !== undefined) {
    const avail = b.memAvailable ?? b.memFree!;
    const inBalloon = b.deflateOnOom ? b.actualPages * 4096 : 0;
    memUsed = Math.max(0, (b.memTotal - avail - inBalloon) / MiB);
    memFree = b.memFree === undefined ? undefined : b.memFree / MiB;
  }
  const running = cur.state === "running" || cur.state === "booting";
  return {
    t: Date.now() / 1000,
    cpu: Math.min(100, Math.max(0, (100 * (cur.busyMs - prev.busyMs)) / dt)),
    mips: perSec(grew(cur.instret, prev.instret)) / 1e6,
    memUsed: running || cur.state === "paused" ? memUsed : undefined,
    memAvail: cur.uptimeMs > 0 ? ramMiB - balloonMiB : undefined,
    memFree,
    balloon: balloonMiB,
    diskRead: perSec(grew(cur.disk?.readBytes ?? 0, prev.disk?.readBytes ?? 0)),
    diskWrite: perSec(grew(cur.disk?.writeBytes ?? 0, prev.disk?.writeBytes ?? 0)),
    netRx: perSec(grew(cur.net.rxBytes, prev.net.rxBytes)),
    netTx: perSec(grew(cur.net.txBytes, prev.net.txBytes)),
    netRxPkts: perSec(grew(cur.net.rxPackets, prev.net.rxPackets)),
    netTxPkts: perSec(grew(cur.net.txPackets, prev.net.txPackets)),
    throttled: perSec(Math.max(0, cur.throttledMs - prev.throttledMs)),
    ...jitSample(prev, cur),
  };
}

const pct = (part: number, whole: number) => (whole > 0 ? Math.min(100, Math.max(0, (100 * part) / whole)) : 0);

/** Fewer guest instructions than this in a sample say nothing of how much ran compiled: an idle guest's few timer
 *  ticks would make the share (and its chart) wander with every sample, each change a redraw. */
export const JIT_SHARE_MIN_INSTRUCTIONS = 1e6;

/** The JIT's part of a sample (none without a JIT). Its counters run for the machine's life while instret starts
 *  over at a reboot, and a new machine (the JIT turned on, a restore) starts them all over: the shares are held to
 *  0..100 for the one sample that straddles such a change. */
function jitSample(prev: VmStats, cur: VmStats): Pick<Sample, "jitCompile" | "jitBlocks" | "jitShare"> {
  const j = cur.jit;
  if (!j) return {};
  const p = prev.jit ?? { compiled: 0, compileMs: 0, instret: 0 };
  const ran = grew(cur.instret, prev.instret);
  return {
    jitCompile: pct(grew(j.compileMs, p.compileMs), grew(cur.busyMs, prev.busyMs)),
    jitBlocks: j.compiled,
    jitShare: ran >= JIT_SHARE_MIN_INSTRUCTIONS ? pct(grew(j.instret, p.instret), ran) : undefined,
  };
}

/** A sample for a VM with no running worker (stopped, crashed): everything at rest. */
export function restingSample(): Sample {
  return {
    t: Date.now() / 1000, cpu: 0, mips: 0, balloon: 0, diskRead: 0, diskWrite: 0,
    netRx: 0, netTx: 0, netRxPkts: 0, netTxPkts: 0, throttled: 0,
  };
}

export function fmtBytes(n: number, perSec = false): string {
  const u = perSec ? ["B/s", "KB/s", "MB/s", "GB/s"] : ["B", "KB", "MB", "GB"];
  let i = 0;
  while (Math.abs(n) >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return `${n >= 100 || i === 0 ? n.toFixed(0) : n.toFixed(1)} ${u[i]}`;
}

export function fmtUptime(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${String(m % 60).padStart(2, "0")}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** A CPU share in whole percent, and "<1" for anything under a half, zero included: an idle VM's samples alternate
 *  between zero (a second it slept through) and a few hundredths (a second with a timer tick in it), and a figure that
 *  changed with each would be drawn again every second (every change is a frame: layout, paint, composite). */
export function fmtPct(p: number): string {
  return p < 0.5 ? "<1" : p.toFixed(0);
}

/** Guest MIPS: two significant figures, and "<1" for an idle guest's fractions and zeros (see fmtPct). */
export function fmtMips(m: number): string {
  return m < 0.95 ? "<1" : m < 10 ? m.toFixed(1) : m.toFixed(0);
}

// ---- Drawing the meters: only what is on screen, only when what it shows changed, at most once per animation
// frame, nothing while the page is hidden. The samples go on into MeterHistory regardless (they are cheap; the
// drawing is not): a meter that comes on screen, or a page that shows again, draws what it missed in one go.
//
// The drawers look in an ordinary task, not in an animation frame: asking for a frame costs the renderer and the
// display compositor a run of frames (about six, measured) even when nothing on the page changes, which once a second
// was most of an idle dashboard's cost. A drawer that changes something leaves the browser to draw the next frame; two
// rounds of looking are at least FRAME_MS apart.

/** Something on the page that shows meters: `draw` compares what it would show now with what it shows and redraws
 *  only on a difference. */
export interface Drawer {
  draw(): void;
}

const pageHidden = () => typeof document !== "undefined" && document.visibilityState === "hidden";

const FRAME_MS = 16;

class Painter {
  private readonly onScreen = new Set<Drawer>();
  private readonly byEl = new Map<Element, Set<Drawer>>();
  private scheduled = false;
  private lastLook = -Infinity;
  private io: IntersectionObserver | undefined;
  private watched = new WeakSet<object>();
  /** frames in which the drawers on screen looked, drawers run, and live figures written, by name (for the
   *  tests and measurements: the module's `painter`) */
  frames = 0;
  draws = 0;
  readonly writes: Record<string, number> = {};

  constructor() {
    if (typeof document !== "undefined") document.addEventListener("visibilitychange", () => { if (!pageHidden()) this.invalidate(); });
  }

  /** Registers `d` for as long as `el` is in the document; drawn while `el` intersects the viewport. */
  add(el: Element, d: Drawer): () => void {
    this.io ??= new IntersectionObserver((entries) => {
      let shown = false;
      for (const en of entries) {
        for (const dr of this.byEl.get(en.target) ?? []) {
          if (en.isIntersecting) { this.onScreen.add(dr); shown = true; } else this.onScreen.delete(dr);
        }
      }
      if (shown) this.invalidate();
    });
    const set = this.byEl.get(el);
    if (set) {
      set.add(d);
      // already observed: its place on screen is known
      if ([...set].some((x) => x !== d && this.onScreen.has(x))) { this.onScreen.add(d); this.invalidate(); }
    } else {
      this.byEl.set(el, new Set([d]));
      this.io.observe(el);
    }
    return () => {
      this.onScreen.delete(d);
      const s = this.byEl.get(el);
      s?.delete(d);
      if (s && s.size === 0) { this.io?.unobserve(el); this.byEl.delete(el); }
    };
  }

  /** New samples (or other news): the drawers on screen look soon, once for all the news of this task. */
  invalidate = (): void => {
    if (this.scheduled || pageHidden() || this.onScreen.size === 0) return;
    this.scheduled = true;
    setTimeout(() => {
      this.scheduled = false;
      if (pageHidden()) return;
      this.lastLook = performance.now();
      this.frames++;
      for (const d of this.onScreen) { this.draws++; d.draw(); }
    }, Math.max(0, FRAME_MS - (performance.now() - this.lastLook)));
  };

  /** Invalidates on every change `source` announces (once per source, however many meters watch it). */
  watch(source: { subscribe(fn: () => void): () => void }): void {
    if (this.watched.has(source)) return;
    this.watched.add(source);
    source.subscribe(this.invalidate);
  }
}

export const painter = new Painter();

/** For a component that shows live values: re-renders it when `key()` (a summary of everything it shows that
 *  comes from the samples, as text) differs from what it last rendered, checked once per animation frame after
 *  news from `source`, only while the element behind the returned ref is on screen and the page is shown. */
export function useDrawn<T extends Element>(source: { subscribe(fn: () => void): () => void }, key: () => string, elRef?: RefObject<T | null>): RefObject<T | null> {
  const own = useRef<T>(null);
  const ref = elRef ?? own;
  const [, rerender] = useState(0);
  const keyFn = useRef(key);
  keyFn.current = key;
  const rendered = useRef("");
  rendered.current = key();
  useEffect(() => {
    painter.watch(source);
    const el = ref.current;
    if (!el) return;
    return painter.add(el, { draw: () => { if (keyFn.current() !== rendered.current) rerender((n) => n + 1); } });
  }, [source]);
  return ref;
}

/** A live figure inside a component: the element `[data-live=name]` under the component's element gets `value` as
 *  its text (an element with no text is hidden), or as its style width, title or data-value (`kind`). */
export type LiveField = [name: string, kind: "text" | "width" | "title" | "data", value: string];

/** For a component whose live figures change more often than the rest of it: React renders the elements empty
 *  (`<span data-live="cpu" />`), and the figures are written into them directly (no React render), after every
 *  render and, once per animation frame after news from `source`, where they changed while the element behind the
 *  returned ref is on screen and the page is shown. */
export function useLiveFields<T extends HTMLElement>(source: { subscribe(fn: () => void): () => void }, fields: () => LiveField[]): RefObject<T | null> {
  const ref = useRef<T>(null);
  const fieldsFn = useRef(fields);
  fieldsFn.current = fields;
  const shown = useRef(new Map<string, string>());
  // the elements by name, looked up once per render (not once a second for every figure of every card)
  const targets = useRef(new Map<string, HTMLElement | null>());
  const write = useRef(() => {
    const el = ref.current;
    if (!el) return;
    for (const [name, kind, value] of fieldsFn.current()) {
      const k = `${name}.${kind}`;
      if (shown.current.get(k) === value) continue;
      let target = targets.current.get(name);
      if (target === undefined || (target && !target.isConnected)) targets.current.set(name, target = el.querySelector<HTMLElement>(`[data-live="${name}"]`));
      if (!target) continue;
      shown.current.set(k, value);
      painter.writes[k] = (painter.writes[k] ?? 0) + 1;
      if (kind === "text") {
        // the text node's value changes in place (no node removed and inserted: less to lay out)
        const node = target.firstChild;
        if (node && node.nodeType === 3 && !node.nextSibling) node.nodeValue = value;
        else target.textContent = value;
        if (target.hidden !== (value === "")) target.hidden = value === "";
      }
      else if (kind === "width") target.style.width = value;
      else if (kind === "title") target.title = value;
      else target.dataset.value = value;
    }
  });
  // after a render (which may have made the elements anew) every figure is written
  useLayoutEffect(() => { shown.current.clear(); targets.current.clear(); write.current(); });
  useEffect(() => {
    painter.watch(source);
    const el = ref.current;
    if (!el) return;
    return painter.add(el, { draw: () => write.current() });
  }, [source]);
  return ref;
}

/** An uptime to the minute (what the dashboard shows: it changes once a minute, not once a second, and every change
 *  is a frame drawn). */
export function fmtUptimeCoarse(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return "<1m";
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${String(m % 60).padStart(2, "0")}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}
