// A VM for the network lab page (web/network-lab.html): the dashboard's VmHandle (its worker, control block and
// console rings) with network cards from a NetworkHub (VmHandleOptions.nics), and a plain-text console (escape
// sequences removed) that scripts can run commands on.

import { VmHandle } from "../../vm-handle.ts";
import type { VmState, VmStats } from "../../../shared/protocol.ts";
import type { GuestImages } from "../../images.ts";
import type { NetworkHub, CardSpec } from "../../../net/hub.ts";

export interface LabVmOptions {
  name: string;
  hart: WebAssembly.Module;
  images: GuestImages;
  hub: NetworkHub;
  cards: CardSpec[];
  ramMiB?: number;
  /** appended to "console=ttyS0 hostname=NAME" */
  append?: string;
}

const KEEP_TEXT = 256 * 1024;
// CSI and OSC sequences, other two-byte escapes, carriage returns
// eslint-disable-next-line no-control-regex
const ESCAPES = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[@-Z\\-_]|\r/g;

export class LabVm {
  readonly name: string;
  readonly handle: VmHandle;
  private readonly decoder = new TextDecoder();
  private raw = "";
  /** console text so far (without escape sequences; the oldest dropped beyond 256 KiB) */
  text = "";
  /** characters dropped from the front of `text` */
  private dropped = 0;
  private readonly listeners = new Set<() => void>();
  private commandSeq = 0;
  private disposed = false;

  constructor(opts: LabVmOptions) {
    this.name = opts.name;
    const net = opts.hub.attachVm(opts.name, opts.cards);
    this.handle = new VmHandle({
      name: opts.name, hart: opts.hart, images: opts.images, ramMiB: opts.ramMiB ?? 128,
      cmdline: `console=ttyS0 hostname=${opts.name}${opts.append ? " " + opts.append : ""}`,
      nics: (ctrl) => net.nics(ctrl),
    });
    this.handle.attachConsole({
      write: (data, done) => { this.append(this.decoder.decode(data, { stream: true })); done(); },
    });
    this.handle.onStateChange(() => this.notify());
  }

  get state(): VmState { return this.handle.state; }
  start(): Promise<VmStats> { return this.handle.start(); }
  reset(): Promise<VmStats> { return this.handle.reset(); }
  powerOff(): Promise<VmStats> { return this.handle.powerOff(); }

  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => { this.listeners.delete(fn); };
  }

  private notify(): void { for (const fn of this.listeners) fn(); }

  send(text: string): void { this.handle.sendInput(text); }

  private append(s: string): void {
    // an escape sequence may be cut between two reads: keep an unfinished one for the next
    let raw = this.raw + s;
    const esc = raw.lastIndexOf("\x1b");
    let keep = "";
    if (esc >= 0 && raw.length - esc < 32 && !/[@-~]/.test(raw.slice(esc + 2))) { keep = raw.slice(esc); raw = raw.slice(0, esc); }
    this.raw = keep;
    this.text += raw.replace(ESCAPES, "");
    if (this.text.length > KEEP_TEXT) {
      const cut = this.text.length - KEEP_TEXT / 2;
      this.text = this.text.slice(cut);
      this.dropped += cut;
    }
    this.notify();
  }

  /** Position in the console text (counting dropped characters), for waitFor(…, from). */
  get mark(): number { return this.dropped + this.text.length; }

  /** Waits until the console text after `from` matches; resolves with the text up to the end of the match. */
  waitFor(re: RegExp, timeoutMs = 30_000, from = this.mark): Promise<string> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const rest = this.text.slice(Math.max(0, from - this.dropped));
        const m = re.exec(rest);
        if (m) { stop(); resolve(rest.slice(0, m.index + m[0].length)); }
      };
      const timer = setTimeout(() => {
        stop();
        reject(new Error(`${this.name}: timed out after ${timeoutMs} ms waiting for ${re}; the console ends with:\n${this.text.slice(-600)}`));
      }, timeoutMs);
      const off = this.onChange(check);
      const stop = () => { clearTimeout(timer); off(); };
      check();
    });
  }

  /** Runs a shell command line; resolves with its output (and `status=N` of the last command in `status`). */
  async command(cmd: string, timeoutMs = 30_000): Promise<{ output: string; status: number }> {
    const n = ++this.commandSeq;
    const from = this.mark;
    this.send(`${cmd}; echo "@@E""ND${n} $?@@"\n`);
    const out = await this.waitFor(new RegExp(`\\n@@END${n} (\\d+)@@`), timeoutMs, from);
    const typed = out.indexOf(`@@E""ND${n}`);
    const echoEnd = out.indexOf("\n", typed);
    const m = new RegExp(`\\n@@END${n} (\\d+)@@$`).exec(out)!;
    return { output: out.slice(echoEnd + 1, m.index), status: Number(m[1]) };
  }

  dispose(hub?: NetworkHub): void {
    if (this.disposed) return;
    this.disposed = true;
    hub?.detachVm(this.name);
    this.handle.dispose();
  }
}
