// TCP connections from the host side of a network: the gateway opens them to a VM (the page's "Open port" goes
// through one to a VM's web server). Only the active open a client needs (RFC 9293): SYN with our MSS, the
// three-way handshake, data both ways in order, retransmission with a doubling timeout (go-back-N from the first
// byte not acknowledged), the peer's window respected, FIN both ways, RST. What is left out because the peer is a
// Linux guest on a lossless virtual switch: no window scaling or SACK (64 KiB in flight at most), no out-of-order
// queue (a segment out of order is dropped and acknowledged again: the guest retransmits), no TIME_WAIT (local ports
// are not reused soon: they count up through the ephemeral range).
//
// A reader that falls behind holds the peer back: with a receive buffer (connect's receiveBuffer), bytes handed to
// onData count against it until the reader says it took them (consumed()), and the window we advertise shrinks to
// what is left, down to zero; a guest that sends beyond it has the excess dropped (it must send it again).
//
// Everything the guest sends is checked before it is believed: a segment for no connection gets a RST, an ACK for
// bytes never sent is answered with an ACK and otherwise ignored, a peer that stops answering is given up after its
// retries ("timed out").

import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, buildTcp, parseTcp, readU16, ipToString, type TcpSegment } from "./packet.ts";

/** What a connection needs from the gateway that carries it. */
export interface TcpNetwork {
  /** our address (the gateway's) */
  readonly ip: number;
  /** sends a TCP segment (checksum included) to `dst` in an IPv4 packet */
  sendSegment(dst: number, segment: Uint8Array): void;
}

export interface TcpHandlers {
  /** the handshake completed */
  onOpen?(): void;
  /** bytes from the peer, in order (a copy the handler may keep) */
  onData?(bytes: Uint8Array): void;
  /** the peer sent FIN: nothing more will come */
  onEnd?(): void;
  /** the connection is over: `error` is undefined after an orderly close both ways, else why ("connection refused",
   *  "connection reset", "timed out", "aborted") */
  onClose?(error?: string): void;
}

const MSS = 1460;
const WINDOW = 65535;
const RTO_START_MS = 250;
const RTO_MAX_MS = 8000;
/** retransmissions of the SYN before "timed out" (about 0.25 + 0.5 + 1 + 2 + 4 s) */
const SYN_RETRIES = 4;
const DATA_RETRIES = 8;
const EPHEMERAL_FIRST = 49152;
const EPHEMERAL_COUNT = 16384;

type State = "syn-sent" | "established" | "closed";

const seqAdd = (a: number, n: number) => (a + n) >>> 0;
const seqDiff = (a: number, b: number) => (a - b) >>> 0; // a - b, mod 2^32
/** a in (lo, hi] mod 2^32 */
const seqIn = (a: number, lo: number, hi: number) => seqDiff(a, lo) !== 0 && seqDiff(a, lo) <= seqDiff(hi, lo);

export class TcpConnection {
  state: State = "syn-sent";
  readonly localPort: number;
  /** bytes received and sent (payload) */
  bytesIn = 0;
  bytesOut = 0;

  private readonly iss: number;
  private sndUna: number;
  private sndNxt: number;
  private sndWnd = 0;
  private mss = 536;
  /** bytes from sndUna on: sent and not acknowledged, then not sent yet */
  private sndBuf = new Uint8Array(0);
  private rcvNxt = 0;
  private wantFin = false;
  private finSent = false;
  private peerFin = false;
  /** bytes given to onData that the reader has not released (consumed) */
  private unread = 0;
  /** the window last advertised */
  private advertised = WINDOW;
  private rto = RTO_START_MS;
  private retries = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly net: TcpNetwork, readonly remoteIp: number, readonly remotePort: number, localPort: number,
              private readonly handlers: TcpHandlers, private readonly done: (c: TcpConnection) => void,
              /** bytes the reader may hold unreleased (Infinity: onData's bytes are taken as given) */
              private readonly receiveBuffer = Infinity) {
    this.localPort = localPort;
    this.iss = (Math.random() * 0x100000000) >>> 0;
    this.sndUna = this.iss;
    this.sndNxt = seqAdd(this.iss, 1);
    this.sendSyn();
  }

  /** Sends bytes (queued until the peer's window has room). */
  write(bytes: Uint8Array): void {
    if (this.state === "closed" || this.wantFin) throw new Error("write after end");
    const b = new Uint8Array(this.sndBuf.length + bytes.length);
    b.set(this.sndBuf);
    b.set(bytes, this.sndBuf.length);
    this.sndBuf = b;
    this.pump();
  }

  /** Sends FIN once everything written has gone. */
  end(): void {
    if (this.state === "closed" || this.wantFin) return;
    this.wantFin = true;
    this.pump();
  }

  /** The reader took `n` bytes of what onData gave: the window opens again (a window update when it had closed). */
  consumed(n: number): void {
    if (!(n > 0) || this.receiveBuffer === Infinity) return;
    this.unread = Math.max(0, this.unread - n);
    // say so when the peer would otherwise wait: the window was below a segment and now holds one or more
    if (this.state === "established" && this.advertised < this.mss && this.window() >= this.mss) this.send(TCP_ACK, this.sndNxt);
  }

  private window(): number {
    return this.receiveBuffer === Infinity ? WINDOW : Math.max(0, Math.min(WINDOW, this.receiveBuffer - this.unread));
  }

  /** Resets the connection (RST) and forgets it. */
  abort(): void {
    if (this.state === "closed") return;
    if (this.state === "established") this.send(TCP_RST | TCP_ACK, this.sndNxt);
    this.finish("aborted");
  }

  /** A segment from the peer (the gateway checked the checksum and that it is for this connection). */
  input(seg: TcpSegment): void {
    if (this.state === "closed") return;
    const flags = seg.flags;
    if (this.state === "syn-sent") {
      if (flags & TCP_ACK && seg.ack !== seqAdd(this.iss, 1)) {
        if (!(flags & TCP_RST)) this.sendRaw(TCP_RST, seg.ack, 0); // not an answer to our SYN
        return;
      }
      if (flags & TCP_RST) { if (flags & TCP_ACK) this.finish("connection refused"); return; }
      if (!(flags & TCP_SYN) || !(flags & TCP_ACK)) return;
      this.rcvNxt = seqAdd(seg.seq, 1);
      this.sndUna = seg.ack;
      this.sndWnd = seg.window;
      this.mss = Math.min(MSS, mssOption(seg.options) ?? 536);
      this.state = "established";
      this.clearTimer();
      this.rto = RTO_START_MS;
      this.retries = 0;
      this.send(TCP_ACK, this.sndNxt);
      this.handlers.onOpen?.();
      this.pump();
      return;
    }
    // established (and closing): the segment must be in our receive window
    const len = seg.payload.length;
    if (flags & TCP_RST) {
      if (seqDiff(seg.seq, this.rcvNxt) < WINDOW) this.finish("connection reset");
      return;
    }
    if (flags & TCP_SYN) { this.send(TCP_ACK, this.sndNxt); return; } // a SYN again: our ACK was lost
    if (flags & TCP_ACK) this.acked(seg.ack, seg.window);
    if (this.state !== "established") return; // the ACK finished the connection
    if (len > 0 || flags & TCP_FIN) {
      if (seg.seq === this.rcvNxt && !this.peerFin) {
        // what fits the window we offered; the rest comes again
        const take = Math.min(len, this.window());
        if (take > 0) {
          this.rcvNxt = seqAdd(this.rcvNxt, take);
          this.bytesIn += take;
          if (this.receiveBuffer !== Infinity) this.unread += take;
          this.handlers.onData?.(seg.payload.slice(0, take));
        }
        const fin = (flags & TCP_FIN) !== 0 && take === len;
        if (fin) {
          this.rcvNxt = seqAdd(this.rcvNxt, 1);
          this.peerFin = true;
        }
        this.send(TCP_ACK, this.sndNxt);
        if (fin) {
          this.handlers.onEnd?.();
          this.maybeClosed();
        }
      } else {
        this.send(TCP_ACK, this.sndNxt); // out of order or a repeat: say again what we expect
      }
    }
  }

  private acked(ack: number, window: number): void {
    if (!seqIn(ack, this.sndUna, this.sndNxt)) {
      if (ack === this.sndUna) this.sndWnd = window; // a window update
      this.pump();
      return;
    }
    let n = seqDiff(ack, this.sndUna);
    const finAcked = this.finSent && ack === this.sndNxt;
    if (finAcked) n--; // the FIN's sequence number carries no byte
    this.sndBuf = this.sndBuf.subarray(Math.min(n, this.sndBuf.length));
    this.bytesOut += n;
    this.sndUna = ack;
    this.sndWnd = window;
    this.rto = RTO_START_MS;
    this.retries = 0;
    this.clearTimer();
    if (finAcked) { this.maybeClosed(); return; }
    this.pump();
  }

  /** Sends what the window allows (from the first unsent byte), then FIN when asked and all is sent. */
  private pump(): void {
    if (this.state !== "established") return;
    const sent = seqDiff(this.sndNxt, this.sndUna) - (this.finSent ? 1 : 0);
    let off = sent;
    while (off < this.sndBuf.length) {
      const inFlight = seqDiff(this.sndNxt, this.sndUna);
      const room = Math.min(this.sndWnd, WINDOW) - inFlight;
      if (room <= 0) break;
      const n = Math.min(this.mss, this.sndBuf.length - off, room);
      this.send(TCP_ACK | TCP_PSH, seqAdd(this.sndUna, off), this.sndBuf.subarray(off, off + n));
      off += n;
      this.sndNxt = seqAdd(this.sndUna, off);
    }
    if (this.wantFin && !this.finSent && off === this.sndBuf.length) {
      this.send(TCP_FIN | TCP_ACK, this.sndNxt);
      this.sndNxt = seqAdd(this.sndNxt, 1);
      this.finSent = true;
    }
    if (this.sndNxt !== this.sndUna) this.armTimer();
    else if (this.sndBuf.length > 0) this.armTimer(); // a closed window: probe it when the timer fires
  }

  private maybeClosed(): void {
    if (this.peerFin && this.finSent && this.sndUna === this.sndNxt) this.finish(undefined);
  }

  private armTimer(): void {
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => this.timeout(), this.rto);
  }

  private clearTimer(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private timeout(): void {
    this.timer = undefined;
    if (this.state === "closed") return;
    this.retries++;
    this.rto = Math.min(this.rto * 2, RTO_MAX_MS);
    if (this.state === "syn-sent") {
      if (this.retries > SYN_RETRIES) { this.finish("timed out"); return; }
      this.sendSyn();
      return;
    }
    if (this.retries > DATA_RETRIES) { this.finish("timed out"); return; }
    // go back to the first byte not acknowledged (a zero window: this sends one byte, a probe)
    if (this.finSent && this.sndBuf.length === 0 && seqDiff(this.sndNxt, this.sndUna) === 1) {
      this.send(TCP_FIN | TCP_ACK, this.sndUna);
      this.armTimer();
      return;
    }
    this.sndNxt = this.sndUna;
    this.finSent = false;
    if (this.sndWnd === 0 && this.sndBuf.length > 0) {
      this.send(TCP_ACK | TCP_PSH, this.sndUna, this.sndBuf.subarray(0, 1));
      this.armTimer();
      return;
    }
    this.pump();
  }

  private sendSyn(): void {
    const mss = new Uint8Array([2, 4, MSS >> 8, MSS & 0xff]);
    this.sendRaw(TCP_SYN, this.iss, 0, undefined, mss);
    this.armTimer();
  }

  private send(flags: number, seq: number, payload?: Uint8Array): void {
    this.sendRaw(flags, seq, this.rcvNxt, payload);
  }

  private sendRaw(flags: number, seq: number, ack: number, payload?: Uint8Array, options?: Uint8Array): void {
    this.net.sendSegment(this.remoteIp, buildTcp(this.net.ip, this.remoteIp, {
      srcPort: this.localPort, dstPort: this.remotePort, seq, ack, flags, window: (this.advertised = this.window()), payload, options,
    }));
  }

  private finish(error: string | undefined): void {
    if (this.state === "closed") return;
    this.state = "closed";
    this.clearTimer();
    this.done(this);
    this.handlers.onClose?.(error);
  }

  toString(): string { return `${ipToString(this.net.ip)}:${this.localPort} -> ${ipToString(this.remoteIp)}:${this.remotePort}`; }
}

/** The MSS option of a SYN's options, if there is one. */
function mssOption(opts: Uint8Array): number | undefined {
  for (let i = 0; i < opts.length;) {
    const kind = opts[i];
    if (kind === 0) break;
    if (kind === 1) { i++; continue; }
    const len = opts[i + 1];
    if (len === undefined || len < 2 || i + len > opts.length) break;
    if (kind === 2 && len === 4) { const v = readU16(opts, i + 2); return v >= 64 ? v : undefined; }
    i += len;
  }
  return undefined;
}

/** The connections a gateway has open, by their ports. */
export class TcpEndpoint {
  private readonly conns = new Map<string, TcpConnection>();
  private nextPort = 0;

  constructor(private readonly net: TcpNetwork) {}

  get open(): number { return this.conns.size; }

  /** receiveBuffer: see TcpConnection.consumed (default: no limit, the window stays open) */
  connect(ip: number, port: number, handlers: TcpHandlers, opts: { receiveBuffer?: number } = {}): TcpConnection {
    if (!(port > 0 && port < 65536)) throw new RangeError(`port ${port}`);
    let local = 0;
    for (let i = 0; i < EPHEMERAL_COUNT; i++) {
      const p = EPHEMERAL_FIRST + ((this.nextPort + i) % EPHEMERAL_COUNT);
      if (!this.conns.has(key(ip, port, p))) { local = p; this.nextPort = (this.nextPort + i + 1) % EPHEMERAL_COUNT; break; }
    }
    if (!local) throw new Error("no local port free");
    const c = new TcpConnection(this.net, ip, port, local, handlers, (x) => this.conns.delete(key(x.remoteIp, x.remotePort, x.localPort)),
      opts.receiveBuffer);
    if (c.state !== "closed") this.conns.set(key(ip, port, local), c);
    return c;
  }

  /** A TCP segment addressed to us (payload of an IPv4 packet from `src` whose checksum was checked). */
  input(src: number, segment: Uint8Array): void {
    const seg = parseTcp(segment);
    if (!seg) return;
    const c = this.conns.get(key(src, seg.srcPort, seg.dstPort));
    if (c) { c.input(seg); return; }
    // nothing listens here: reset, unless it is a reset (RFC 9293 3.10.7.1)
    if (seg.flags & TCP_RST) return;
    const len = seg.payload.length + (seg.flags & TCP_SYN ? 1 : 0) + (seg.flags & TCP_FIN ? 1 : 0);
    const rst = seg.flags & TCP_ACK
      ? { seq: seg.ack, ack: 0, flags: TCP_RST }
      : { seq: 0, ack: seqAdd(seg.seq, len), flags: TCP_RST | TCP_ACK };
    this.net.sendSegment(src, buildTcp(this.net.ip, src, { srcPort: seg.dstPort, dstPort: seg.srcPort, window: 0, ...rst }));
  }

  /** Resets every connection (the network goes away). */
  closeAll(): void {
    for (const c of [...this.conns.values()]) c.abort();
  }
}

const key = (ip: number, port: number, local: number) => `${ip}:${port}:${local}`;
