// Small helpers both sides of a VM need around saved machines: whether a saved state fits a VM (and how to say why
// not), whether restoring it means a new identity for the guest, and which buffers of a state may be transferred
// instead of copied between threads.

import type { MachineSpec } from "../../emulator-core/src/machine/description.ts";
import { templateShape, hostnameOf } from "../../emulator-core/src/snapshot/template.ts";
import type { StateObject, StateValue } from "../../emulator-core/src/snapshot/state-value.ts";

const MiB = 1024 * 1024;

const size = (bytes: number) => (bytes % MiB === 0 ? `${bytes / MiB} MiB` : `${(bytes / MiB).toFixed(1)} MiB`);

/** "128 MiB, a 64 MiB disk, 1 network card": what must match for a saved state to go into a machine. */
export function describeShape(spec: MachineSpec): string {
  const disks = spec.disks.length === 0 ? "no disk"
    : spec.disks.length === 1 ? `a ${size(spec.disks[0].sizeBytes)} disk`
    : `disks of ${spec.disks.map((d) => size(d.sizeBytes)).join(", ")}`;
  const nics = `${spec.nics.length} network card${spec.nics.length === 1 ? "" : "s"}`;
  const extra = [spec.rng ? "" : "no rng", spec.balloon ? "" : "no balloon", spec.agent ? "" : "no agent channel", spec.deterministic ? "deterministic clock" : ""].filter(Boolean);
  return [`${spec.ramMiB} MiB`, disks, nics, ...extra].join(", ");
}

/** Why a state saved from a machine of `saved` cannot go into `target` (named `vm`), or undefined when it can. */
export function shapeMismatch(saved: MachineSpec, target: MachineSpec, vm: string): string | undefined {
  if (templateShape(saved) === templateShape(target)) return undefined;
  return `the snapshot is of another kind of machine (${describeShape(saved)}) than ${vm} (${describeShape(target)})`;
}

/** The guest restored from `saved` into `target` keeps its host name and MACs: no new identity to tell it. */
export function sameIdentity(saved: MachineSpec, target: MachineSpec): boolean {
  return hostnameOf(saved.cmdline) === hostnameOf(target.cmdline) &&
    JSON.stringify(saved.nics) === JSON.stringify(target.nics);
}

/** The buffers holding a saved machine's RAM and disk pages. They are the bulk of a state and are made fresh by
 *  Machine.saveState (and by decoding a file), so they can be transferred; the small device states are copied,
 *  since a device's state may share arrays with the live device. A state decoded from a file is all views of one
 *  buffer: transferring it moves the whole state, which the sender must not use afterwards. */
export function bulkBuffers(state: StateValue): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  const pages = (v: StateValue | undefined) => {
    if (!v || typeof v !== "object" || Array.isArray(v) || v instanceof Uint8Array) return;
    for (const k of ["present", "data"]) {
      const b = (v as StateObject)[k];
      if (b instanceof Uint8Array && b.buffer instanceof ArrayBuffer) out.add(b.buffer);
    }
  };
  const s = state as StateObject;
  pages(s.ram);
  if (Array.isArray(s.disks)) for (const d of s.disks) if (d && typeof d === "object" && !Array.isArray(d) && !(d instanceof Uint8Array)) pages((d as StateObject).image);
  return [...out];
}
