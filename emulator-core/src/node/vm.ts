// A VM in Node: loads the guest images, describes the machine (emulator-core/src/machine/description.ts) and runs
// it with the shared run loop on the event loop, sleeping while the guest idles. Used by the CLI, the tests and the
// benchmarks.

import { readFileSync, existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import { isGzip } from "../gunzip.ts";
import { MAX_UNPACKED_INITRD } from "../machine/linux-image.ts";
import { Machine, BootError } from "../machine/machine.ts";
import { makeSpec, MachineSpecError, type MachineSpec } from "../machine/description.ts";
import { MachineRunner, runSlice, hold, type RunnerHost } from "../machine/runner.ts";
import type { MachineAttachments } from "../machine/description.ts";
import { takeSnapshot, openSnapshot } from "../snapshot/snapshot.ts";
import { sendHostTime, startFromTemplate, startAs, type RestoreFn } from "../snapshot/template.ts";
import type { StateValue } from "../snapshot/state-value.ts";
import { migrateOut, MigrationTarget, type MigrationMessage, type MigrationOptions, type MigrationStats } from "../snapshot/migration.ts";
import { ConsoleInput } from "../machine/console-input.ts";
import { FileBlockBackend } from "./file-block-backend.ts";
import { loadHartModule } from "./hart-module.ts";
import type { VirtioNet } from "../machine/virtio/net.ts";
import { baseBacked, type BlockBackend } from "../machine/virtio/backends.ts";
import type { DiskSpec } from "../machine/description.ts";
import type { VirtioBalloon, VirtioBalloonOptions } from "../machine/virtio/balloon.ts";
import { AgentClient } from "../agent/client.ts";
import type { RegionCompiler } from "../jit/region-compiler.ts";
import { nodeRegionCompiler } from "./jit-compile-worker.ts";

export const DEFAULT_IMAGES = fileURLToPath(new URL("../../../public/images/", import.meta.url));

/** A problem with what the VM was asked to do (a missing or corrupt file, too little memory): one line. */
export class VmConfigError extends Error {}

/** A snapshot opened already: the description and state openSnapshot gives. */
export interface OpenedTemplate { spec: MachineSpec; state: StateValue }

export interface NodeVmOptions {
  /** the whole machine description (instead of ramMiB, append, nics, ...: a restore builds the snapshot's) */
  spec?: MachineSpec;
  /** build the board without booting it (all-zero RAM): a state is restored into it next */
  blank?: boolean;
  ramMiB?: number;
  kernel?: string;
  initrd?: string;
  /** kernel command line; default: console on the UART, hostname */
  append?: string;
  hostname?: string;
  disk?: string;
  /** a disk backend to attach instead of a file (a chunked image: node/chunked-image.ts); not with `disk` */
  diskBackend?: BlockBackend;
  /** number of network cards (their frames go to nic.backend) */
  nics?: number;
  /** MAC of each NIC (default 52:54:00:12:34:56+i) */
  macs?: ArrayLike<number>[];
  deterministic?: boolean;
  /** a virtio-balloon device (true for the defaults) */
  balloon?: boolean | VirtioBalloonOptions;
  /** Console output. Return false when its consumer is behind (a pipe not emptied): with whenConsoleDrained the
   *  guest is then held, after the slice that wrote it, until whenConsoleDrained() resolves, so output never piles
   *  up on the host (the guest's own buffers fill and its writers wait, as on a real serial line). */
  onConsole?: (bytes: Uint8Array) => boolean | void;
  /** with onConsole returning false: resolves once the consumer can take more */
  whenConsoleDrained?: () => Promise<void>;
  /** keep console output in `output` (default true) */
  keepOutput?: boolean;
  /** unpack a gzip initramfs on the host and hand the guest the cpio archive inside (default true; Linux takes
   *  either): the guest then skips inflating it in emulated instructions, about 40% of the default guest's boot.
   *  false hands the guest the very file it was given (`npm run bench:linux -- --gz-initrd` times that boot). */
  inflateInitrd?: boolean;
  /** compile hot guest code to WebAssembly (the JIT, src/jit/README.md); default false */
  jit?: boolean;
  /** with jit: executions of a block start before its page is compiled (default DEFAULT_JIT_THRESHOLD in
   *  src/jit/tier.ts; 1 compiles all code) */
  jitThreshold?: number;
  /** with jit: instructions retired before the JIT starts (default: a Linux machine's, DEFAULT_JIT_START_AFTER in
   *  src/jit/tier.ts; 0: from the first instruction) */
  jitStartAfter?: number;
  /** with jit: build regions on the VM's own thread, in run()'s stops, instead of on a compiler thread (the
   *  default: src/jit/region-compiler.ts) */
  jitOnThread?: boolean;
}

/** Host time per slice while the guest is busy: how long console input and timers wait at most. */
const SLICE_MS = 20;

function readImage(path: string, what: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new VmConfigError(`cannot read the ${what} ${path}: ${code === "ENOENT" ? "no such file" : code ?? (e as Error).message}`);
  }
}

/** The cpio archive in a gzip initramfs, at most MAX_UNPACKED_INITRD bytes of it (as unpackInitrd, linux-image.ts,
 *  in the page); anything else, or a file the host cannot unpack whole, as it is, for the guest to judge. */
function inflated(initrd: Uint8Array): Uint8Array {
  if (!isGzip(initrd)) return initrd;
  try {
    return gunzipSync(initrd, { maxOutputLength: MAX_UNPACKED_INITRD });
  } catch {
    return initrd;
  }
}

export class NodeVm {
  readonly machine: Machine;
  readonly spec: MachineSpec;
  private readonly attachments: MachineAttachments;
  /** the JIT's compiler thread (jit and not jitOnThread), closed when run() ends */
  private jitCompiler: RegionCompiler | undefined;
  /** while above zero the guest is held (a snapshot is being taken) */
  private holds = 0;
  /** the console's consumer is behind (onConsole returned false): the guest is held until it drains */
  private consoleBehind = false;
  /** started from a template and not yet told who it is: console input waits */
  private identityPending = false;
  output = "";
  private readonly runner: MachineRunner;
  private readonly input = new ConsoleInput();
  private wakes = 0;
  private wakeUp: (() => void) | undefined;
  private failure: unknown;
  private readonly keepOutput: boolean;
  private readonly decoder = new TextDecoder();
  private watchers: { re: RegExp; from: number; resolve: (s: string) => void }[] = [];
  private disk: FileBlockBackend | undefined;
  /** the disk the guest sees: the file's backend, or opts.diskBackend */
  private readonly diskAttached: BlockBackend | undefined;
  /** resolves with the guest's exit status once it powers off or is stopped */
  readonly exited: Promise<number>;
  private resolveExit!: (status: number) => void;

  constructor(opts: NodeVmOptions = {}) {
    this.keepOutput = opts.keepOutput ?? true;
    const kernel = readImage(opts.kernel ?? DEFAULT_IMAGES + "Image", "kernel");
    const initrdPath = opts.initrd ?? (opts.kernel ? undefined : DEFAULT_IMAGES + "initramfs.cpio.gz");
    let initrd = initrdPath ? readImage(initrdPath, "initrd") : undefined;
    if (initrd && (opts.inflateInitrd ?? true)) initrd = inflated(initrd);
    if (opts.disk !== undefined) {
      if (!existsSync(opts.disk)) throw new VmConfigError(`cannot open the disk ${opts.disk}: no such file`);
      try {
        this.disk = new FileBlockBackend(opts.disk);
      } catch (e) {
        throw new VmConfigError((e as Error).message);
      }
    }
    if (opts.diskBackend && this.disk) { this.disk.close(); throw new VmConfigError("give either a disk file or a disk backend, not both"); }
    this.diskAttached = this.disk ?? opts.diskBackend;
    const hostname = opts.hostname ?? "tabvisor";
    try {
      this.spec = opts.spec ?? makeSpec({
        ramMiB: opts.ramMiB ?? 256,
        cmdline: opts.append ?? `console=ttyS0 hostname=${hostname}`,
        deterministic: opts.deterministic ?? false,
        disks: this.diskAttached ? [diskSpecOf(this.diskAttached)] : [],
        nics: Array.from({ length: opts.nics ?? 0 }, (_, i) => ({
          mac: Array.from(opts.macs?.[i] ?? [0x52, 0x54, 0x00, 0x12, 0x34, 0x56 + i]),
        })),
        rng: true,
        balloon: opts.balloon ?? false,
      });
      this.attachments = {
        boot: { kernel, initrd },
        disks: this.diskAttached ? [this.diskAttached] : [],
        // a disk request that completes later (a chunk fetched) must wake a guest idling until its next timer
        wake: () => setImmediate(() => this.wake()),
        onConsole: (bytes) => {
          if (opts.onConsole?.(bytes) === false && opts.whenConsoleDrained && !this.consoleBehind) {
            this.consoleBehind = true;
            opts.whenConsoleDrained().then(() => { this.consoleBehind = false; this.wake(); }, () => {});
          }
          if (this.keepOutput || this.watchers.length) this.addOutput(bytes);
        },
      };
      this.jitCompiler = opts.jit && !opts.jitOnThread ? nodeRegionCompiler(loadHartModule()) : undefined;
      const machineOptions = {
        jit: opts.jit, jitThreshold: opts.jitThreshold, jitStartAfter: opts.jitStartAfter, jitCompiler: this.jitCompiler,
      };
      this.machine = opts.blank
        ? Machine.blank(loadHartModule(), this.spec, this.attachments, machineOptions)
        : Machine.create(loadHartModule(), this.spec, this.attachments, machineOptions);
    } catch (e) {
      this.disk?.close();
      this.jitCompiler?.close();
      if (e instanceof BootError || e instanceof MachineSpecError) throw new VmConfigError(e.message);
      throw e;
    }
    this.runner = new MachineRunner(this.host(), this.machine);
    this.exited = new Promise((r) => (this.resolveExit = r));
  }

  /** the network cards (eth0, eth1, ...) */
  get nics(): readonly VirtioNet[] { return this.machine.nics; }
  /** the virtio-balloon device, with opts.balloon */
  get balloon(): VirtioBalloon | undefined { return this.machine.balloon; }

  private agentClient: AgentClient | undefined;
  /** The control channel to the guest's agent: exec a command, put or get a file (emulator-core/src/agent). */
  get agent(): AgentClient {
    const port = this.machine.agentChannel;
    if (!port) throw new VmConfigError("this machine has no agent channel (its description says agent: false)");
    return (this.agentClient ??= new AgentClient(port, () => this.wake()));
  }

  private host(): RunnerHost {
    return {
      wakeToken: () => this.wakes,
      sleep: (token, ms) => {
        if (token !== this.wakes) return;
        return new Promise<void>((resolve) => {
          const done = () => { clearTimeout(timer); this.wakeUp = undefined; resolve(); };
          const timer = setTimeout(done, ms);
          this.wakeUp = done;
        });
      },
      wake: () => this.wake(),
      // let other VMs, timers and console input in
      yieldToEvents: () => new Promise<void>((resolve) => setImmediate(resolve)),
      beforeSlice: (m) => {
        if (this.holds > 0 || this.consoleBehind) return hold(1000);
        if (m && this.identityPending) return runSlice(SLICE_MS);
        if (m) this.input.pump(m);
        return runSlice(SLICE_MS);
      },
      hasWork: (m) => !this.identityPending && this.input.ready(m),
      halted: () => this.runner.stop(),
      failed: (_m, e) => { this.failure = e; this.runner.stop(); },
    };
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

  /** Runs the guest until it powers off or stop() is called; a guest reboot does not end it. Resolves with the
   *  exit status (0 when stopped); rejects when the emulator fails. */
  async run(): Promise<number> {
    await this.runner.run();
    this.agentClient?.close(this.machine.halted ? "the guest powered off" : "the VM stopped");
    this.disk?.close();
    this.jitCompiler?.close();
    if (this.failure !== undefined) throw this.failure;
    const status = this.machine.exitStatus ?? 0;
    this.resolveExit(status);
    return status;
  }

  /** Starts run() in the background. */
  start(): this { void this.run(); return this; }

  /** Wakes an idle guest (after input or a network frame). */
  wake(): void {
    this.wakes++;
    this.wakeUp?.();
  }

  /** Types at the console. The bytes wait here until the guest's serial port is open and reading, so input sent
   *  early (a script piped in during boot) is not lost. */
  send(text: string | Uint8Array): void {
    this.input.push(typeof text === "string" ? new TextEncoder().encode(text) : text);
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
    // the typed line's echo (the last one: a line typed just as the shell switches its terminal mode is echoed
    // twice, once by the terminal and once by the shell's line editor)
    const typed = out.lastIndexOf(`@@E""ND${n}@@`);
    const echoEnd = out.indexOf("\n", typed);
    return out.slice(echoEnd + 1).replace(new RegExp(`\r?\n@@END${n}@@$`), "");
  }

  stop(): void { this.runner.stop(); }

  /** A snapshot file of the VM as it is now; the guest is held while it is taken and runs on afterwards. */
  async snapshot(info: { name?: string } = {}): Promise<Uint8Array> {
    this.holds++;
    try {
      return await takeSnapshot(this.machine, { vmName: this.hostname, ...info });
    } finally {
      this.holds--;
      this.wake();
    }
  }

  /** A VM that starts from a snapshot file instead of booting. Its disk (opts.disk) must be the size the snapshot's
   *  disk had; the snapshot's disk contents are written into it. Throws SnapshotError for a file that is corrupt,
   *  truncated, of another format version or of a machine that cannot be built. */
  static async restore(file: Uint8Array, opts: Omit<NodeVmOptions, "spec" | "ramMiB" | "append" | "hostname" | "nics" | "macs" | "deterministic" | "balloon"> = {}): Promise<NodeVm> {
    const { spec, state } = await openSnapshot(file);
    if (spec.disks.length > (opts.disk === undefined && opts.diskBackend === undefined ? 0 : 1)) {
      throw new VmConfigError(`the snapshot's VM has ${spec.disks.length} disk(s): give --disk with a disk image of ${spec.disks[0].sizeBytes} bytes to restore it onto`);
    }
    const vm = new NodeVm({ ...opts, spec, blank: true });
    await vm.machine.restoreState(state);
    sendHostTime(vm.machine);
    return vm;
  }

  /** A VM that starts from a template snapshot (snapshot/template.ts) instead of booting: same options as the
   *  constructor; its description must have the template's shape. Throws SnapshotError when it does not.
   *  `template` is the snapshot file, or the snapshot already opened (openSnapshot's spec and state), or a
   *  promise of that: the board is built while it settles. (The CLI keeps the default template's state decoded
   *  in a cache, cli/template-cache.ts, and reads it while the board is built: opening the file is a large part
   *  of its start-up.) */
  static async fromTemplate(template: Uint8Array | OpenedTemplate | Promise<OpenedTemplate>, opts: NodeVmOptions = {}): Promise<NodeVm> {
    // (should building the board throw, a failure of the template's promise is not also an unhandled rejection)
    if (template instanceof Promise) template.catch(() => {});
    const vm = new NodeVm({ ...opts, blank: true });
    // The template's shell answers at once, but under the template's name until the guest has taken its identity:
    // typed input waits for that, so a script's first command already sees this VM's name.
    vm.identityPending = true;
    vm.machine.onAgentLine = (line) => { if (line.startsWith("ok identity")) { vm.identityPending = false; vm.wake(); } };
    const restore: RestoreFn = async (_spec, _att, state, o) => { await vm.machine.restoreState(state, o); return vm.machine; };
    const t = await template;
    if (t instanceof Uint8Array) await startFromTemplate(restore, t, vm.spec, vm.attachments);
    // what startFromTemplate does once it has opened the file
    else await startAs(restore, t, vm.spec, vm.attachments, { skipDisks: true, freshPrompt: true });
    return vm;
  }

  /** Forks the VM: a new VM starts from this one's state as it is now, with its own host name and MACs (the guest
   *  is told through its agent, and takes a new DHCP lease), and a copy of the disk in opts.disk (a file of the
   *  same size, overwritten). Both run on. */
  async fork(opts: { hostname: string; macs?: ArrayLike<number>[]; disk?: string } & Pick<NodeVmOptions, "onConsole" | "whenConsoleDrained" | "keepOutput">): Promise<NodeVm> {
    if (this.spec.disks.length && opts.disk === undefined) throw new VmConfigError("the VM has a disk: give the fork a disk file of the same size");
    this.holds++;
    let state;
    try {
      state = await this.machine.saveState();
    } finally {
      this.holds--;
      this.wake();
    }
    const cmdline = /(?:^|\s)hostname=\S+/.test(this.spec.cmdline)
      ? this.spec.cmdline.replace(/(^|\s)hostname=\S+/, `$1hostname=${opts.hostname}`)
      : `${this.spec.cmdline} hostname=${opts.hostname}`;
    const nics = this.spec.nics.map((n, i) => ({ mac: Array.from(opts.macs?.[i] ?? n.mac) }));
    const spec = { ...this.spec, cmdline, nics };
    const vm = new NodeVm({ spec, disk: opts.disk, onConsole: opts.onConsole, whenConsoleDrained: opts.whenConsoleDrained, keepOutput: opts.keepOutput, blank: true });
    await startAs(async (_sp, _att, st, o) => { await vm.machine.restoreState(st, o); return vm.machine; },
      { spec: this.spec, state }, spec, vm.attachments, { skipDisks: false, freshPrompt: false });
    return vm;
  }

  /** Live-migrates this VM out through `send` (migration.ts): RAM is copied while the guest runs, then the guest
   *  is held for the last pages and the state. The VM stops here once the target has everything. */
  async migrate(send: (m: MigrationMessage) => void | Promise<void>, opts: MigrationOptions = {}): Promise<MigrationStats> {
    let held = false;
    const stats = await migrateOut(this.machine, {
      hold: () => { if (!held) { held = true; this.holds++; } },
      release: () => { if (held) { held = false; this.holds--; this.wake(); } },
      yield: () => new Promise((r) => setTimeout(r, 1)),
    }, send, opts);
    this.stop();
    return stats;
  }

  /** The receiving end of a migration: feed it the messages; the last one resolves with the VM, not yet started. */
  static migrationTarget(opts: Omit<NodeVmOptions, "spec"> = {}): { receive(m: MigrationMessage): Promise<NodeVm | undefined> } {
    let vm: NodeVm | undefined;
    const target = new MigrationTarget((spec) => {
      vm = new NodeVm({ ...opts, spec, blank: true });
      return vm.machine;
    });
    return { receive: async (m) => ((await target.receive(m)) ? vm : undefined) };
  }

  /** the guest's host name, from its kernel command line */
  private get hostname(): string { return /(?:^|\s)hostname=(\S+)/.exec(this.spec.cmdline)?.[1] ?? "tabvisor"; }
}

/** Joins two NICs with a virtual cable: frames one sends, the other receives. */
export function connectCable(a: { nic: VirtioNet; vm: NodeVm }, b: { nic: VirtioNet; vm: NodeVm }): void {
  a.nic.backend = { send: (frame) => { b.nic.receive(frame); b.vm.wake(); } };
  b.nic.backend = { send: (frame) => { a.nic.receive(frame); a.vm.wake(); } };
}

/** The description of an attached disk: its size, whether it is read-only, and the image it is over (if any). */
function diskSpecOf(b: BlockBackend): DiskSpec {
  const base = baseBacked(b)?.baseId;
  return { sizeBytes: b.size, readOnly: b.readOnly ?? false, ...(base !== undefined ? { base } : {}) };
}
