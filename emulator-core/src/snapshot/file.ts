// The snapshot file: a small readable header (what machine, when, how big) and the compressed state, with one
// checksum over it all.
//
//   offset  size  what
//   0       8     magic "TABVSNAP"
//   8       4     format version (u32 little-endian; SNAPSHOT_FORMAT)
//   12      4     header length H
//   16      H     header: UTF-8 JSON (SnapshotHeader)
//   16+H    4     body length B
//   20+H    B     body: raw DEFLATE (RFC 1951) of the encoded state tree (codec.ts)
//   20+H+B  4     CRC-32 of every byte before it
//
// Reading checks, in order: the magic, the version, the lengths against the file's size, the checksum, then the
// header's and body's contents, so a truncated, corrupt or foreign file is refused with a message saying which.
// The body is inflated into a buffer of the header's stateBytes (at most MAX_STATE_BYTES, and no more than its
// compressed bytes can hold) and never past it: a small file that inflates to far more than its header says is
// refused as soon as its output passes that size, having taken no more memory than the size it claimed.

import { deflateSync, Inflate } from "fflate";
import { crc32 } from "./crc32.ts";
import { encodeState, decodeState } from "./codec.ts";
import { SnapshotError, type StateValue } from "./state-value.ts";

// The platform's own (native) DEFLATE where it has one: browsers and Node 20 have CompressionStream, several
// times faster than a JavaScript inflater, which matters for a restore; fflate otherwise.
const nativeDeflate = typeof CompressionStream === "function" && typeof DecompressionStream === "function";

async function deflate(raw: Uint8Array): Promise<Uint8Array> {
  if (!nativeDeflate) return deflateSync(raw, { level: 1 });
  const out = new Blob([raw as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new CompressionStream("deflate-raw"));
  return new Uint8Array(await new Response(out).arrayBuffer());
}

/** DEFLATE's densest code is two bits for a 258-byte match: no body inflates to more than this per byte. */
const MAX_INFLATE_RATIO = 1032;
/** fflate is handed the body this much at a time, so one step's output stays under MAX_INFLATE_RATIO times it. */
const FFLATE_STEP = 16384;

const tooBig = (size: number) => new SnapshotError(`the snapshot is corrupt: its state decompresses to more than the ${size} bytes its header says`);

/** Inflates a raw DEFLATE body that the header says holds `size` bytes into a buffer of that size, and refuses it
 *  (SnapshotError) as soon as its output passes that: the output is counted as it comes, never gathered whole. A
 *  body that ends short of `size` returns what it gave (the caller checks the length); other failures throw
 *  whatever the inflater threw. */
async function inflate(body: Uint8Array, size: number): Promise<Uint8Array> {
  const out = new Uint8Array(size);
  let at = 0;
  const take = (chunk: Uint8Array): boolean => {
    if (chunk.length > size - at) return false;
    out.set(chunk, at);
    at += chunk.length;
    return true;
  };
  if (nativeDeflate) {
    const reader = new Blob([body as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream("deflate-raw")).getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (!take(value)) {
        reader.cancel().catch(() => {}); // stops the inflater; what it says as it stops does not matter
        throw tooBig(size);
      }
    }
  } else {
    let over = false;
    const inflater = new Inflate((chunk) => { if (!over && !take(chunk)) over = true; });
    for (let i = 0; i < body.length && !over; i += FFLATE_STEP) {
      inflater.push(body.subarray(i, i + FFLATE_STEP), i + FFLATE_STEP >= body.length);
    }
    if (over) throw tooBig(size);
  }
  return at === size ? out : out.subarray(0, at);
}

export const SNAPSHOT_MAGIC = "TABVSNAP";
export const SNAPSHOT_FORMAT = 1;
const MAX_HEADER = 1 << 20;
/** The largest state a snapshot may hold: 2 GiB of RAM (the most a VM has) and room for everything else. */
const MAX_STATE_BYTES = 2 ** 31 + 2 ** 27;

/** What a snapshot file says about itself, readable without decompressing the state. */
export interface SnapshotHeader {
  /** the machine description (validated by the machine when restoring) */
  machine: unknown;
  /** when it was taken (ISO 8601) */
  createdAt: string;
  /** a name the user gave it */
  name?: string;
  /** bytes of the body once decompressed */
  stateBytes: number;
  [key: string]: unknown;
}

const utf8 = new TextEncoder();

/** Writes a snapshot file. */
export async function writeSnapshotFile(header: Omit<SnapshotHeader, "stateBytes">, state: StateValue): Promise<Uint8Array> {
  const raw = encodeState(state);
  return frameSnapshotFile({ ...header, stateBytes: raw.length } as SnapshotHeader, await deflate(raw));
}

/** The file around a compressed state: magic, format version, the header, the body and the checksum, as the
 *  reader expects them (tests frame bodies and headers of their own with it, to make files that lie). */
export function frameSnapshotFile(header: SnapshotHeader, body: Uint8Array): Uint8Array {
  const head = utf8.encode(JSON.stringify(header));
  const out = new Uint8Array(20 + head.length + body.length + 4);
  const dv = new DataView(out.buffer);
  out.set(utf8.encode(SNAPSHOT_MAGIC), 0);
  dv.setUint32(8, SNAPSHOT_FORMAT, true);
  dv.setUint32(12, head.length, true);
  out.set(head, 16);
  dv.setUint32(16 + head.length, body.length, true);
  out.set(body, 20 + head.length);
  dv.setUint32(out.length - 4, crc32(out.subarray(0, out.length - 4)), true);
  return out;
}

interface Parts { header: SnapshotHeader; body: Uint8Array }

function split(file: Uint8Array, checkSum: boolean): Parts {
  if (file.length < 8 || new TextDecoder().decode(file.subarray(0, 8)) !== SNAPSHOT_MAGIC) {
    throw new SnapshotError("this is not a Tabvisor snapshot (it does not start with TABVSNAP)");
  }
  if (file.length < 24) throw new SnapshotError("the snapshot is truncated");
  const dv = new DataView(file.buffer, file.byteOffset, file.length);
  const version = dv.getUint32(8, true);
  if (version !== SNAPSHOT_FORMAT) {
    throw new SnapshotError(`the snapshot has format version ${version}; this Tabvisor reads version ${SNAPSHOT_FORMAT}`);
  }
  const headLen = dv.getUint32(12, true);
  if (headLen > MAX_HEADER || 20 + headLen > file.length) throw new SnapshotError("the snapshot is truncated (its header runs past the end)");
  const bodyLen = dv.getUint32(16 + headLen, true);
  const end = 20 + headLen + bodyLen;
  if (end + 4 > file.length) throw new SnapshotError(`the snapshot is truncated: ${file.length} bytes, its header says ${end + 4}`);
  if (end + 4 < file.length) throw new SnapshotError("the snapshot has extra bytes after its end");
  if (checkSum && crc32(file.subarray(0, end)) !== dv.getUint32(end, true)) {
    throw new SnapshotError("the snapshot is corrupt: its checksum does not match");
  }
  let header: SnapshotHeader;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(file.subarray(16, 16 + headLen)));
  } catch {
    throw new SnapshotError("the snapshot's header is not valid JSON");
  }
  if (header === null || typeof header !== "object" || typeof header.createdAt !== "string" ||
      !Number.isSafeInteger(header.stateBytes) || header.stateBytes < 0 || header.stateBytes > MAX_STATE_BYTES) {
    throw new SnapshotError("the snapshot's header lacks its machine, time or size");
  }
  return { header, body: file.subarray(20 + headLen, end) };
}

/** The header alone (checks the framing, not the checksum: cheap, for listing snapshots). */
export function readSnapshotHeader(file: Uint8Array): SnapshotHeader {
  return split(file, false).header;
}

/** Checks and opens a snapshot file: its header and its state tree. */
export async function readSnapshotFile(file: Uint8Array): Promise<{ header: SnapshotHeader; state: StateValue }> {
  const { header, body } = split(file, true);
  // (with a little room for the smallest bodies, whose block headers are most of them)
  if (header.stateBytes > body.length * MAX_INFLATE_RATIO + 1024) {
    throw new SnapshotError(`the snapshot is corrupt: its header says ${header.stateBytes} bytes of state, more than its ${body.length} compressed bytes can hold`);
  }
  let raw: Uint8Array;
  try {
    raw = await inflate(body, header.stateBytes);
  } catch (e) {
    if (e instanceof SnapshotError) throw e;
    throw new SnapshotError("the snapshot is corrupt: its state does not decompress");
  }
  if (raw.length !== header.stateBytes) throw new SnapshotError("the snapshot is corrupt: its state has the wrong size");
  return { header, state: decodeState(raw) };
}
