// What the page and a VM worker share: the control block in shared memory, the states, and the comlink API.
//
// Control block (Int32Array over a SharedArrayBuffer):
//   DOORBELL       the page adds 1 and Atomics.notify()s it whenever the worker should look around: input was
//                  typed, output room was freed, a control call is on its way. An idle worker sleeps in
//                  Atomics.wait on it (until the guest's next timer deadline or the bell).
//   PENDING_CALLS  control calls the page has posted and the worker has not begun: while it is above zero the
//                  worker never blocks, it returns to its event loop so comlink can deliver them (a worker
//                  blocked in Atomics.wait cannot receive messages).
//   WANT_SPACE     set by the worker when the output ring is full and the guest is held; the page rings the
//                  doorbell after draining when it sees it.
//   STATE          the VmState code, published by the worker on every change (the page may read it any time).
//   PAGE_ASLEEP    set by the page when its console pump stops for lack of output (no animation frames are
//                  requested then: an idle tab draws nothing); the worker clears it when it writes output and
//                  bumps OUTPUT_BELL, which the page awaits with Atomics.waitAsync (or polls without it).
//   OUTPUT_BELL    see PAGE_ASLEEP.

export const CTRL = { DOORBELL: 0, PENDING_CALLS: 1, WANT_SPACE: 2, STATE: 3, PAGE_ASLEEP: 4, OUTPUT_BELL: 5 } as const;
export const CTRL_WORDS = 8;

export const VM_STATES = ["created", "booting", "running", "paused", "stopped", "error"] as const;
export type VmState = (typeof VM_STATES)[number];

export interface VmStats {
  state: VmState;
  /** instructions the guest has retired since it was (re)booted */
  instret: number;
  /** host time spent running the guest (ms, since boot) */
  busyMs: number;
  /** host time spent asleep while the guest idled (ms, since boot) */
  idleMs: number;
  /** set once the guest has stopped */
  haltReason?: string;
  exitStatus?: number;
}

export type VmEvent =
  | { kind: "state"; state: VmState; detail?: string }
  | { kind: "ready" };

export interface VmBootImages {
  kernel: Uint8Array;
  initrd?: Uint8Array;
}

export interface VmInit {
  /** the compiled emulator core (emulator-core/build/hart.wasm) */
  hart: WebAssembly.Module;
  images: VmBootImages;
  cmdline: string;
  ramMiB: number;
  ctrl: SharedArrayBuffer;
  /** guest console output: the worker writes, the page reads */
  output: SharedArrayBuffer;
  /** console input: the page writes, the worker reads */
  input: SharedArrayBuffer;
}

/** The VM worker's control API (exposed with comlink). */
export interface VmWorkerApi {
  /** `onEvent` (a comlink proxy: a separate argument, comlink only proxies those) hears of state changes and of
   *  the guest's readiness */
  init(init: VmInit, onEvent: (e: VmEvent) => void): void;
  /** boots the guest (from "created" or "stopped") */
  start(): VmStats;
  pause(): VmStats;
  resume(): VmStats;
  /** a hard reset: a fresh machine booted from the same images */
  reset(): VmStats;
  /** pulls the plug: the guest stops at once */
  powerOff(): VmStats;
  stats(): VmStats;
}

/** The marker the guest's /init prints when the shell is about to start. */
export const GUEST_READY_MARKER = "@@GUEST_READY@@";
