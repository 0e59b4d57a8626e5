// The agent protocol: what the host and the guest's agent (guest/agent/tabvisor-agent.c) say to each other over the
// control channel (virtio-console port "org.tabvisor.agent.0", emulator-core/src/machine/virtio/console.ts).
//
// A byte stream of frames, both ways. A frame is a 12-byte header, little-endian:
//   magic u16 = 0x5654 ("TV")   type u8   flags u8 (0)   id u32   len u32
// then `len` bytes of payload (at most MAX_PAYLOAD). The magic lets a reader that lost its place (a guest agent
// restarted halfway through a frame) find the next frame. `id` names the request a frame belongs to; the host
// picks ids, and the agent answers with the request's id (id 0: the agent's own HELLO when it starts).
//
// Host to guest:
//   HELLO     -                                  -> HELLO "tabvisor-agent VERSION"
//   EXEC      timeout_ms u32, command            -> STDOUT*, STDERR*, then EXIT   (or ERR)
//             runs `/bin/sh -c command` in its own session, stdin /dev/null, cwd /root (else /), killed with its
//             whole process group when timeout_ms passes (0: no limit)
//   PUT       mode u32, size u64, path           -> (DATA* from the host, then END from the host) -> OK or ERR
//             writes PATH.tabvisor-part, fsyncs it and renames it to PATH at END, if exactly `size` bytes came;
//             missing parent directories are made
//   GET       path                               -> SIZE, DATA*, END   (or ERR)
//   CANCEL    -                                  -> ends request `id`: kills its command, drops its file
// Guest to host:
//   EXIT      code i32 (-1 when killed), signal i32, timed_out u32
//   ERR       errno i32, message
//   OK        bytes u64 (PUT: the bytes written)
//   SIZE      size u64 (GET: the file's size)

export const AGENT_MAGIC = 0x5654;
export const HEADER_LEN = 12;
/** largest payload either side sends or takes */
export const MAX_PAYLOAD = 1 << 20;
/** the data frames the host sends (and the agent sends): big enough to keep the queue's buffers full */
export const DATA_CHUNK = 64 << 10;

export const T = {
  HELLO: 0x01,
  EXEC: 0x02,
  PUT: 0x03,
  DATA: 0x04,
  END: 0x05,
  GET: 0x06,
  CANCEL: 0x07,
  R_HELLO: 0x81,
  STDOUT: 0x82,
  STDERR: 0x83,
  EXIT: 0x84,
  R_DATA: 0x85,
  R_END: 0x86,
  ERR: 0x87,
  OK: 0x88,
  SIZE: 0x89,
} as const;

export interface Frame {
  type: number;
  id: number;
  payload: Uint8Array;
}

export class AgentProtocolError extends Error {}

export function encodeFrame(type: number, id: number, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  if (payload.length > MAX_PAYLOAD) throw new AgentProtocolError(`a frame of ${payload.length} bytes (at most ${MAX_PAYLOAD})`);
  const f = new Uint8Array(HEADER_LEN + payload.length);
  const dv = new DataView(f.buffer);
  dv.setUint16(0, AGENT_MAGIC, true);
  f[2] = type;
  f[3] = 0;
  dv.setUint32(4, id >>> 0, true);
  dv.setUint32(8, payload.length, true);
  f.set(payload, HEADER_LEN);
  return f;
}

const enc = new TextEncoder();

/** PUT's payload: mode, size, path. */
export function putPayload(path: string, size: number, mode: number): Uint8Array {
  const p = enc.encode(path);
  const b = new Uint8Array(12 + p.length);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, mode, true);
  dv.setBigUint64(4, BigInt(size), true);
  b.set(p, 12);
  return b;
}

/** EXEC's payload: timeout, command. */
export function execPayload(command: string, timeoutMs: number): Uint8Array {
  const c = enc.encode(command);
  const b = new Uint8Array(4 + c.length);
  new DataView(b.buffer).setUint32(0, Math.max(0, Math.min(0xffffffff, Math.round(timeoutMs))), true);
  b.set(c, 4);
  return b;
}

/**
 * Splits a byte stream into frames. Bytes that do not start a frame (no magic, an unknown length) are skipped up
 * to the next magic, and counted in `skipped`: a stream that went wrong recovers instead of stopping for good.
 */
export class FrameReader {
  skipped = 0;
  private buf = new Uint8Array(64 << 10);
  private len = 0;

  push(bytes: Uint8Array, onFrame: (f: Frame) => void): void {
    if (this.len + bytes.length > this.buf.length) {
      const b = new Uint8Array(Math.max(this.buf.length * 2, this.len + bytes.length));
      b.set(this.buf.subarray(0, this.len));
      this.buf = b;
    }
    this.buf.set(bytes, this.len);
    this.len += bytes.length;
    let at = 0;
    const dv = new DataView(this.buf.buffer);
    while (this.len - at >= 2) {
      if (dv.getUint16(at, true) !== AGENT_MAGIC) { at++; this.skipped++; continue; }
      if (this.len - at < HEADER_LEN) break;
      const n = dv.getUint32(at + 8, true);
      if (n > MAX_PAYLOAD) { at++; this.skipped++; continue; }
      if (this.len - at < HEADER_LEN + n) break;
      const f: Frame = { type: this.buf[at + 2], id: dv.getUint32(at + 4, true), payload: this.buf.slice(at + HEADER_LEN, at + HEADER_LEN + n) };
      at += HEADER_LEN + n;
      onFrame(f);
    }
    this.buf.copyWithin(0, at, this.len);
    this.len -= at;
    // What is held is at most one frame being assembled: shrink back after a big one.
    if (this.buf.length > (256 << 10) && this.len < (64 << 10)) this.buf = this.buf.slice(0, 64 << 10);
  }
}
