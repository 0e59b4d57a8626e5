// What a device's saved state is made of, and the checks every restore uses.
//
// A device saves itself as a StateValue: plain data (numbers, strings, booleans, bigints, byte arrays, arrays and
// objects of those), so the snapshot encoder can write it and structured clone can carry it between workers.
// A snapshot is untrusted input (a file a user opened, a link), so restoreState() reads it only through the
// checked accessors below: a missing field, a wrong type or a value out of range throws SnapshotError naming it,
// and the device must not have changed anything when it throws (read everything first, then assign).

export type StateValue =
  | number | string | boolean | bigint | null | Uint8Array
  | StateValue[]
  | { [key: string]: StateValue };

export type StateObject = { [key: string]: StateValue };

/** A snapshot that cannot be restored: corrupt, truncated, from another format version, or for another machine. */
export class SnapshotError extends Error {}

/** A device (or other part of the machine) whose state can be saved and restored. */
export interface Stateful {
  saveState(): StateValue;
  /** Throws SnapshotError (leaving the device as it was) when the state is malformed. */
  restoreState(state: StateValue): void;
}

/** Reads fields of a saved state object, checking each one; `where` names the object in error messages. */
export class StateReader {
  private readonly o: StateObject;
  constructor(value: StateValue | undefined, readonly where: string) {
    if (value === null || typeof value !== "object" || Array.isArray(value) || value instanceof Uint8Array) {
      throw new SnapshotError(`${where}: expected an object`);
    }
    this.o = value as StateObject;
  }

  has(key: string): boolean { return Object.prototype.hasOwnProperty.call(this.o, key); }

  raw(key: string): StateValue {
    if (!this.has(key)) throw new SnapshotError(`${this.where}.${key}: missing`);
    return this.o[key];
  }

  /** A finite number in [min, max]; whole unless fractional is set. */
  num(key: string, min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER, fractional = false): number {
    const v = this.raw(key);
    if (typeof v !== "number" || !Number.isFinite(v) || (!fractional && !Number.isInteger(v)) || v < min || v > max) {
      throw new SnapshotError(`${this.where}.${key}: expected a ${fractional ? "number" : "whole number"} in [${min}, ${max}], got ${describe(v)}`);
    }
    return v;
  }

  bool(key: string): boolean {
    const v = this.raw(key);
    if (typeof v !== "boolean") throw new SnapshotError(`${this.where}.${key}: expected true or false, got ${describe(v)}`);
    return v;
  }

  str(key: string, maxLength = 4096): string {
    const v = this.raw(key);
    if (typeof v !== "string" || v.length > maxLength) throw new SnapshotError(`${this.where}.${key}: expected a string of at most ${maxLength} characters`);
    return v;
  }

  /** A bigint in [0, 2^bits). */
  big(key: string, bits = 64): bigint {
    const v = this.raw(key);
    if (typeof v !== "bigint" || v < 0n || v >= 1n << BigInt(bits)) {
      throw new SnapshotError(`${this.where}.${key}: expected an unsigned ${bits}-bit integer, got ${describe(v)}`);
    }
    return v;
  }

  /** Bytes; exactly `length` long when given as a number, else at most maxLength. */
  bytes(key: string, opts: { length?: number; maxLength?: number } = {}): Uint8Array {
    const v = this.raw(key);
    if (!(v instanceof Uint8Array)) throw new SnapshotError(`${this.where}.${key}: expected bytes, got ${describe(v)}`);
    if (opts.length !== undefined && v.length !== opts.length) throw new SnapshotError(`${this.where}.${key}: expected ${opts.length} bytes, got ${v.length}`);
    if (opts.maxLength !== undefined && v.length > opts.maxLength) throw new SnapshotError(`${this.where}.${key}: more than ${opts.maxLength} bytes`);
    return v;
  }

  /** An array of at most maxLength items. */
  array(key: string, maxLength: number): StateValue[] {
    const v = this.raw(key);
    if (!Array.isArray(v) || v.length > maxLength) throw new SnapshotError(`${this.where}.${key}: expected a list of at most ${maxLength} items`);
    return v;
  }

  /** A nested object, as a reader. */
  obj(key: string): StateReader { return new StateReader(this.raw(key), `${this.where}.${key}`); }
}

function describe(v: StateValue): string {
  if (v === null) return "null";
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  if (Array.isArray(v)) return "a list";
  if (typeof v === "string") return JSON.stringify(v.length > 20 ? v.slice(0, 20) + "…" : v);
  if (typeof v === "bigint") return `${v}n`;
  return typeof v === "object" ? "an object" : String(v);
}
