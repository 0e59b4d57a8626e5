// Taking and opening whole-machine snapshots: the file format (file.ts) around a machine's state
// (machine-state.ts), with the machine description in the header so the same board can be built to restore into.

import type { Machine } from "../machine/machine.ts";
import { validateSpec, type MachineSpec } from "../machine/description.ts";
import { writeSnapshotFile, readSnapshotFile, type SnapshotHeader } from "./file.ts";
import { SnapshotError, type StateValue } from "./state-value.ts";

export { SnapshotError };

export interface OpenedSnapshot {
  header: SnapshotHeader;
  spec: MachineSpec;
  state: StateValue;
}

/** A snapshot file of the machine as it is now. The machine must not run until this resolves. */
export async function takeSnapshot(machine: Machine, info: { name?: string; vmName?: string } = {}): Promise<Uint8Array> {
  const state = await machine.saveState();
  return writeSnapshotFile({ machine: machine.spec, createdAt: new Date().toISOString(), ...info }, state);
}

function specOf(header: SnapshotHeader): MachineSpec {
  try {
    return validateSpec(header.machine);
  } catch (e) {
    throw new SnapshotError(`the snapshot's machine description is not one this Tabvisor can build: ${(e as Error).message}`);
  }
}

/** Checks and opens a snapshot file; throws SnapshotError saying what is wrong with it. */
export async function openSnapshot(file: Uint8Array): Promise<OpenedSnapshot> {
  const { header, state } = await readSnapshotFile(file);
  return { header, spec: specOf(header), state };
}

