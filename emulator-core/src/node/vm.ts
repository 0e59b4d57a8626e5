// A VM in Node: loads the guest images, builds the machine and drives it on the event loop, sleeping while the
// guest idles. Used by the CLI, the tests and the benchmarks.

import { readFileSync, existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Machine, BootError } from "../machine/machine.ts";
import { FileBlockBackend } from "./file-block-backend.ts";
import { loadHartModule } from "./hart-module.ts";
import type { VirtioNet } from "../machine/virtio/net.ts";
import { VirtioMmio } from "../machine/virtio/mmio.ts";
import { VirtioBalloon, type VirtioBalloonOptions } from "../machine/virtio/balloon.ts";

export const DEFAULT_IMAGES = fileURLToPath(new URL("../../../public/images/", import.meta.url));

/** A problem with what the VM was asked to do (a missing or corrupt file, too little memory): one line. */
export class VmConfigError extends Error {}

export interface NodeVmOptions {
  ramMiB?: number;
  kernel?: string;
  initrd?: string;
  /** kernel command line; default: console on the UART, hostname */
  append?: string;
  hostname?: string;
  disk?: string;
  /** number of network cards (their frames go to nic.backend) */
  nics?: number;
  /** MAC of each NIC (default 52:54:00:12:34:56+i) */
  macs?: ArrayLike<number>[];
  deterministic?: boolean;
  /** a virtio-balloon device (true for the defaults) */
  balloon?: boolean | VirtioBalloonOptions;
  onConsole?: (bytes: Uint8Array) => void;
  /** keep console output in `output` (default true) */
  keepOutput?: boolean;
}

function readImage(path: string, what: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new VmConfigError(`cannot read the ${what} ${path}: ${code === "ENOENT" ? "no such file" : code ?? (e as Error).message}`);
  }
}

export class NodeVm {
  readonly machine: Machine;
  readonly nics: VirtioNet[] = [];
  /** the virtio-balloon device, with opts.balloon */
  readonly balloon: VirtioBalloon | undefined;
  output = "";
  private wakeUp: (() => void) | undefined;
  private stopped = false;
  private readonly keepOutput: boolean;
  private readonly decoder = new TextDecoder();
  private watchers: { re: RegExp; from: number; resolve: (s: string) => void }[] = [];
  private disk: FileBlockBackend | undefined;
  /** resolves with the guest's exit status once it powers off or is stopped */
  readonly exited: Promise<number>;
  private resolveExit!: (status: number) => void;

  constructor(opts: NodeVmOptions = {}) {
    this.keepOutput = opts.keepOutput ?? true;
    const kernel = readImage(opts.kernel ?? DEFAULT_IMAGES + "Image", "kernel");
    const initrdPath = opts.initrd ?? (opts.kernel ? undefined : DEFAULT_IMAGES + "initramfs.cpio.gz");
    const initrd = initrdPath ? readImage(initrdPath, "initrd") : undefined;
    const ramMiB = opts.ramMiB ?? 256;
    this.machine = new Machine(loadHartModule(), {
      ramMiB,
      deterministic: opts.deterministic,
      onConsole: (bytes) => {
        opts.onConsole?.(bytes);
        if (this.keepOutput || this.watchers.length) this.addOutput(bytes);
      },
    });
    if (opts.disk !== undefined) {
      if (!existsSync(opts.disk)) throw new VmConfigError(`cannot open the disk ${opts.disk}: no such file`);
      try {
        this.disk = new FileBlockBackend(opts.disk);
      } catch (e) {
        throw new VmConfigError((e as Error).message);
      }
      this.machine.addDisk(this.disk);
    }
    for (let i = 0; i < (opts.nics ?? 0); i++) {
      const mac = opts.macs?.[i] ?? [0x52, 0x54, 0x00, 0x12, 0x34, 0x56 + i];
      this.nics.push(this.machine.addNic({ mac }));
    }
    this.machine.addRng();
    if (opts.balloon) {
      const balloon = new VirtioBalloon(opts.balloon === true ? {} : opts.balloon);
      this.machine.addVirtio((irq) => new VirtioMmio(this.machine.memory, irq, balloon), "virtio-balloon");
      this.balloon = balloon;
    }
    const hostname = opts.hostname ?? "tabvisor";
    const append = opts.append ?? `console=ttyS0 hostname=${hostname}`;
    try {
      this.machine.bootLinux({ kernel, initrd, cmdline: append });
    } catch (e) {
      if (e instanceof BootError) throw new VmConfigError(e.message);
      throw e;
    }
    this.exited = new Promise((r) => (this.resolveExit = r));
  }

  private addOutput(bytes: Uint8Array): void {
    this.output += this.decoder.decode(bytes, { stream: true });
    if (this.output.length > 4_000_000) this.output = this.output.slice(-2_000_000);
    this.watchers = this.watchers.filter((w) => {
      const rest = this.output.slice(Math.min(w.from, this.output.length));
      const m = w.re.exec(rest);
      if (!m) return true;
      w.resolve(rest.slice(0, m.index + m[0].length));
      return false;
    });
  }

  /** Runs the guest until it powers off or stop() is called. */
  async run(): Promise<number> {
    const m = this.machine;
    while (!this.stopped && !m.halted) {
      const r = m.runFor(20);
      if (r.kind === "halted") break;
      if (r.kind === "idle") {
        const wait = Math.max(0, Math.min(1000, (r.wakeAtMs ?? Infinity) - performance.now()));
        const t0 = performance.now();
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => { this.wakeUp = undefined; resolve(); }, wait);
          this.wakeUp = () => { clearTimeout(timer); this.wakeUp = undefined; resolve(); };
        });
        m.idleMs += performance.now() - t0;
      } else {
        // let other VMs, timers and console input in
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
    this.disk?.close();
    const status = m.exitStatus ?? 0;
    this.resolveExit(status);
    return status;
  }

  /** Starts run() in the background. */
  start(): this { void this.run(); return this; }

  /** Wakes an idle guest (after input or a network frame). */
  wake(): void { this.wakeUp?.(); }

  send(text: string | Uint8Array): void {
    this.machine.sendInput(typeof text === "string" ? new TextEncoder().encode(text) : text);
    this.wake();
  }

  /** Resolves with the output since `from` (default: now) up to the first match of pattern. */
  waitFor(pattern: RegExp | string, timeoutMs = 30_000, from = this.output.length): Promise<string> {
    const re = typeof pattern === "string" ? new RegExp(pattern.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")) : pattern;
    const rest = this.output.slice(from);
    const m = re.exec(rest);
    if (m) return Promise.resolve(rest.slice(0, m.index + m[0].length));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.watchers = this.watchers.filter((w) => w.resolve !== done);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${re}; last output:\n${this.output.slice(-600)}`));
      }, timeoutMs);
      const done = (s: string) => { clearTimeout(timer); resolve(s); };
      this.watchers.push({ re, from, resolve: done });
    });
  }

  private commandSeq = 0;

  /** Types a shell command and resolves with its output (without the echoed command line), once the shell has
   *  printed an end marker after it. The marker is split in the typed text so the echo never matches it. */
  async command(cmd: string, timeoutMs = 30_000): Promise<string> {
    const n = ++this.commandSeq;
    const from = this.output.length;
    this.send(`${cmd}; echo "@@E""ND${n}@@"\n`);
    const out = await this.waitFor(new RegExp(`\r?\n@@END${n}@@`), timeoutMs, from);
    const typed = out.indexOf(`@@E""ND${n}@@`);
    const echoEnd = out.indexOf("\n", typed);
    return out.slice(echoEnd + 1).replace(new RegExp(`\r?\n@@END${n}@@$`), "");
  }

  stop(): void { this.stopped = true; this.wake(); }
}

/** Joins two NICs with a virtual cable: frames one sends, the other receives. */
export function connectCable(a: { nic: VirtioNet; vm: NodeVm }, b: { nic: VirtioNet; vm: NodeVm }): void {
  a.nic.backend = { send: (frame) => { b.nic.receive(frame); b.vm.wake(); } };
  b.nic.backend = { send: (frame) => { a.nic.receive(frame); a.vm.wake(); } };
}
