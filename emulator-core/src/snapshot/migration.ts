// Live migration: moving a running machine to another host (a worker in another tab) with the guest paused only
// for a moment. The source sends all of RAM while the guest runs on, logging what it writes (dirty-log.ts); then
// again the pages written meanwhile, round after round, until few are left (or a round limit); then it holds the
// guest, sends the last dirty pages with the rest of the state (hart, devices, clock, disks), and stops. The target
// writes pages straight into a blank machine (Machine.blank) and adopts the state at the end.
//
// The messages are plain data (structured-cloneable, with transferable buffers), so any channel carries them: a
// function call in one process, postMessage between workers, a BroadcastChannel between tabs.

import type { Machine } from "../machine/machine.ts";
import type { MachineSpec } from "../machine/description.ts";
import { validateSpec } from "../machine/description.ts";
import { PAGE_SIZE, nonZeroPages } from "./ram.ts";
import { SnapshotError, type StateObject } from "./state-value.ts";

export type MigrationMessage =
  | { kind: "begin"; spec: MachineSpec }
  /** RAM pages by index, their contents one after another */
  | { kind: "pages"; round: number; indices: Uint32Array; data: Uint8Array }
  /** the last pages and the state without RAM: the target can run */
  | { kind: "end"; indices: Uint32Array; data: Uint8Array; state: StateObject };

export interface MigrationStats {
  /** pages sent in each round (round 0: every non-zero page) */
  rounds: number[];
  /** pages sent while the guest was held */
  finalPages: number;
  /** bytes of page data sent in all */
  bytes: number;
  /** host ms the guest was held at the source (the target's restore adds to the downtime) */
  heldMs: number;
  totalMs: number;
}

export interface MigrationOptions {
  /** stop copying while the guest runs once a round has fewer pages than this (default 256 = 1 MiB) */
  stopBelowPages?: number;
  /** at most this many rounds while the guest runs (default 8) */
  maxRounds?: number;
  /** pages per message (default 512 = 2 MiB) */
  chunkPages?: number;
}

/** How the migration holds the source guest (between run loop turns) and lets it run again. */
export interface GuestControl {
  hold(): void;
  release(): void;
  /** lets the guest run for a while between rounds (it is running: this only yields to it) */
  yield(): Promise<void>;
}

function* chunks(ram: Uint8Array, pages: Iterable<number>, chunkPages: number): Generator<{ indices: Uint32Array; data: Uint8Array }> {
  let idx: number[] = [];
  const flush = () => {
    const indices = Uint32Array.from(idx);
    const data = new Uint8Array(indices.length * PAGE_SIZE);
    indices.forEach((p, i) => data.set(ram.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE), i * PAGE_SIZE));
    idx = [];
    return { indices, data };
  };
  for (const p of pages) {
    idx.push(p);
    if (idx.length === chunkPages) yield flush();
  }
  if (idx.length) yield flush();
}

/** Sends `machine` away through `send`. On return the source machine is held and must not run again; when
 *  sending fails the guest is released (it runs on here) and the error is thrown. */
export async function migrateOut(machine: Machine, control: GuestControl,
  send: (m: MigrationMessage) => void | Promise<void>, opts: MigrationOptions = {}): Promise<MigrationStats> {
  let held = false;
  const t0 = performance.now();
  const stopBelow = opts.stopBelowPages ?? 256, maxRounds = opts.maxRounds ?? 8, chunk = opts.chunkPages ?? 512;
  const ram = machine.hart.ram;
  const log = machine.dirtyLog();
  const stats: MigrationStats = { rounds: [], finalPages: 0, bytes: 0, heldMs: 0, totalMs: 0 };
  await send({ kind: "begin", spec: machine.spec });
  log.start();
  try {
    let pages: Iterable<number> = nonZeroPages(ram);
    for (let round = 0; ; round++) {
      let n = 0;
      for (const c of chunks(ram, pages, chunk)) {
        n += c.indices.length;
        stats.bytes += c.data.length;
        await send({ kind: "pages", round, ...c });
        await control.yield(); // the guest runs between chunks: this is the "live" in live migration
      }
      stats.rounds.push(n);
      const dirty = log.collect();
      if (dirty.length < stopBelow || round + 1 >= maxRounds) { pages = dirty; break; }
      pages = dirty;
    }
    control.hold();
    held = true;
    const heldAt = performance.now();
    const state = await machine.saveState({ withoutRam: true });
    const last = [...(pages as number[]), ...log.collect()];
    const unique = [...new Set(last)].sort((a, b) => a - b);
    const { indices, data } = chunks(ram, unique, Math.max(1, unique.length)).next().value ?? { indices: new Uint32Array(0), data: new Uint8Array(0) };
    stats.finalPages = indices.length;
    stats.bytes += data.length;
    await send({ kind: "end", indices, data, state });
    stats.heldMs = performance.now() - heldAt;
  } catch (e) {
    if (held) control.release();
    throw e;
  } finally {
    log.stop();
  }
  stats.totalMs = performance.now() - t0;
  return stats;
}

/** The receiving end: feed it the messages in order; the last one gives the machine, ready to run. */
export class MigrationTarget {
  private machine: Machine | undefined;

  constructor(private readonly blank: (spec: MachineSpec) => Machine) {}

  async receive(m: MigrationMessage): Promise<Machine | undefined> {
    if (m.kind === "begin") {
      if (this.machine) throw new SnapshotError("a migration began twice");
      let spec: MachineSpec;
      try { spec = validateSpec(m.spec); } catch (e) { throw new SnapshotError(`the migrating machine cannot be built here: ${(e as Error).message}`); }
      this.machine = this.blank(spec);
      return undefined;
    }
    const machine = this.machine;
    if (!machine) throw new SnapshotError("migration data arrived before its beginning");
    this.writePages(machine, m.indices, m.data);
    if (m.kind === "pages") return undefined;
    await machine.restoreState(m.state, { ramInPlace: true });
    this.machine = undefined;
    return machine;
  }

  private writePages(machine: Machine, indices: Uint32Array, data: Uint8Array): void {
    const ram = machine.hart.ram;
    const pages = ram.length / PAGE_SIZE;
    if (data.length !== indices.length * PAGE_SIZE) throw new SnapshotError("migration pages and data disagree");
    for (let i = 0; i < indices.length; i++) {
      const p = indices[i];
      if (p >= pages) throw new SnapshotError(`migration page ${p} is outside this machine's RAM`);
      ram.set(data.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE), p * PAGE_SIZE);
    }
    machine.hart.ex.invalidateDecoded();
  }
}
