// Drives a booted RISC-V Linux guest (busybox shell on the serial console) for the Linux benchmark, the same
// way on Tabvisor (NodeVm, in this process) and on QEMU (a child process on stdio). Every command is typed as
// one line followed by `; echo @@E""ND<n>@@`: the guest prints @@END<n>@@ when the command is done, and the
// terminal's echo of the typed line (which has the quotes, and may be wrapped) can never match it.

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import { NodeVm } from "../../emulator-core/src/node/vm.ts";
import { describeJitSettings, jitDelta, readJitCounters, type JitCounters } from "./jit-stats.ts";

export const PROMPT = /tabvisor:~# /;

export interface CommandResult {
  /** host wall ms from typing the line to seeing the end marker */
  wallMs: number;
  /** what the guest printed between the echo of the line and the end marker (with the echo, possibly wrapped) */
  output: string;
  /** guest instructions retired meanwhile (Tabvisor only) */
  instret?: bigint;
  /** host ms the emulator spent running the guest meanwhile, not sleeping in WFI (Tabvisor only) */
  busyMs?: number;
  /** what the JIT did meanwhile (Tabvisor with the JIT on only) */
  jit?: JitCounters;
}

export interface BootResult {
  wallMs: number;
  instret?: bigint;
  busyMs?: number;
  jit?: JitCounters;
}

/** The emulator's running totals, where it has them (Tabvisor: all; QEMU: none). */
export interface Counters {
  instret?: bigint;
  busyMs?: number;
  jit?: JitCounters;
}

export interface IdleResult {
  wallMs: number;
  /** host CPU time used by the emulator, in % of one core */
  cpuPercent: number;
}

export interface GuestSession {
  readonly name: string;
  /** Starts the emulator; resolves at the first shell prompt. Wall time counts from constructing/spawning it. */
  boot(timeoutMs: number): Promise<BootResult>;
  command(cmd: string, timeoutMs: number): Promise<CommandResult>;
  /** Leaves the guest at its prompt for ms and measures the host CPU the emulator uses meanwhile. */
  idle(ms: number): Promise<IdleResult>;
  /** Powers the guest off (then kills it if that does not work) and releases everything. */
  close(): Promise<void>;
  /** totals since the emulator started: for the whole session's figures */
  counters(): Counters;
  /** a line on how the emulator is set up (the JIT's settings), once it runs */
  settings?(): string;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A console transcript with waiters: resolves when a pattern appears after a given offset. */
class Transcript {
  text = "";
  /** why the emulator went away, once it has */
  failure: string | undefined;
  private readonly decoder = new TextDecoder();
  private waiters: { re: RegExp; from: number; timer: NodeJS.Timeout; resolve: (r: Seen) => void; reject: (e: Error) => void }[] = [];

  add(bytes: Uint8Array): void {
    this.text += this.decoder.decode(bytes, { stream: true });
    if (!this.waiters.length) return;
    const now = performance.now();
    this.waiters = this.waiters.filter((w) => {
      const rest = this.text.slice(w.from);
      const m = w.re.exec(rest);
      if (!m) return true;
      clearTimeout(w.timer);
      w.resolve({ at: now, text: rest.slice(0, m.index + m[0].length) });
      return false;
    });
  }

  /** Resolves with the time the pattern was seen (performance.now()) and the text from `from` up to it. */
  waitFor(re: RegExp, from: number, timeoutMs: number, what: string): Promise<Seen> {
    const rest = this.text.slice(from);
    const m = re.exec(rest);
    if (m) return Promise.resolve({ at: performance.now(), text: rest.slice(0, m.index + m[0].length) });
    if (this.failure) return Promise.reject(new Error(`${what}: ${this.failure}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.timer !== timer);
        reject(new Error(`${what}: timed out after ${(timeoutMs / 1000).toFixed(0)} s; last output:\n${this.text.slice(-500)}`));
      }, timeoutMs);
      this.waiters.push({ re, from, timer, resolve, reject: (e) => reject(new Error(`${what}: ${e.message}`)) });
    });
  }

  /** Fails every waiter, and every later one: the emulator went away. */
  fail(why: string): void {
    if (this.failure) return;
    this.failure = why;
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) { clearTimeout(w.timer); w.reject(new Error(why)); }
  }
}

interface Seen { at: number; text: string }

/** Line, marker and waiting shared by both emulators. */
abstract class ShellSession implements GuestSession {
  abstract readonly name: string;
  protected readonly out = new Transcript();
  private seq = 0;

  protected abstract write(text: string): void;
  protected abstract startEmulator(): void;
  abstract counters(): Counters;
  protected abstract cpuMs(): number | undefined;
  abstract close(): Promise<void>;

  protected wait(re: RegExp, from: number, timeoutMs: number, what: string): Promise<Seen> {
    return this.out.waitFor(re, from, timeoutMs, `${this.name}: ${what}`);
  }

  async boot(timeoutMs: number): Promise<BootResult> {
    const t0 = performance.now();
    this.startEmulator();
    const c0 = this.counters();
    const { at } = await this.wait(PROMPT, 0, timeoutMs, "booting to the shell prompt");
    const c1 = this.counters();
    return {
      wallMs: at - t0,
      instret: c1.instret,
      busyMs: c1.busyMs !== undefined ? c1.busyMs - (c0.busyMs ?? 0) : undefined,
      jit: c1.jit && jitDelta(c1.jit, c0.jit),
    };
  }

  async command(cmd: string, timeoutMs: number): Promise<CommandResult> {
    const n = ++this.seq;
    const end = new RegExp(`@@END${n}@@`);
    const from = this.out.text.length;
    const c0 = this.counters();
    const t0 = performance.now();
    this.write(`${cmd}; echo @@E""ND${n}@@\n`);
    const { at, text } = await this.wait(end, from, timeoutMs, `running \`${cmd}\``);
    const c1 = this.counters();
    // let the shell print its prompt before the next command (not timed)
    await this.wait(PROMPT, from + text.length, 10_000, "the prompt after a command");
    return {
      wallMs: at - t0,
      output: text.slice(0, -`@@END${n}@@`.length),
      instret: c1.instret !== undefined && c0.instret !== undefined ? c1.instret - c0.instret : undefined,
      busyMs: c1.busyMs !== undefined && c0.busyMs !== undefined ? c1.busyMs - c0.busyMs : undefined,
      jit: c1.jit && jitDelta(c1.jit, c0.jit),
    };
  }

  async idle(ms: number): Promise<IdleResult> {
    const cpu0 = this.cpuMs();
    const t0 = performance.now();
    await sleep(ms);
    const cpu1 = this.cpuMs();
    const wallMs = performance.now() - t0;
    if (this.out.failure) throw new Error(`idle: ${this.out.failure}`);
    return { wallMs, cpuPercent: cpu0 === undefined || cpu1 === undefined ? NaN : ((cpu1 - cpu0) / wallMs) * 100 };
  }
}


export interface TabvisorSessionOptions {
  ramMiB: number;
  /** names the session in the log lines ("interp", "jit") */
  name: string;
  /** the JIT on, with this threshold (undefined: its default); absent: the interpreter alone */
  jit?: { threshold?: number };
  /** hand the guest the initramfs unpacked, as NodeVm does by default (false: the gzip file itself) */
  unpackInitrd?: boolean;
}

export class TabvisorSession extends ShellSession {
  readonly name: string;
  private vm: NodeVm | undefined;

  constructor(private readonly opts: TabvisorSessionOptions) {
    super();
    this.name = opts.name;
  }

  protected startEmulator(): void {
    this.vm = new NodeVm({
      ramMiB: this.opts.ramMiB,
      hostname: "tabvisor",
      keepOutput: false,
      onConsole: (bytes) => this.out.add(bytes),
      jit: this.opts.jit !== undefined,
      jitThreshold: this.opts.jit?.threshold,
      inflateInitrd: this.opts.unpackInitrd ?? true,
    }).start();
    void this.vm.exited.then((status) => this.out.fail(`the guest powered off (status ${status})`));
  }

  protected write(text: string): void { this.vm!.send(text); }

  counters(): Counters {
    const m = this.vm?.machine;
    return m ? { instret: m.hart.instret, busyMs: m.busyMs, jit: readJitCounters(m.hart.jit) } : {};
  }

  settings(): string { return describeJitSettings(this.vm?.machine.hart.jit); }

  /** this process's CPU time: the emulator runs on its event loop */
  protected cpuMs(): number {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  }

  async close(): Promise<void> {
    const vm = this.vm;
    if (!vm) return;
    if (!this.out.failure) vm.send("poweroff -f\n");
    const off = await Promise.race([vm.exited.then(() => true), sleep(5_000).then(() => false)]);
    if (!off) vm.stop();
    await vm.exited;
  }
}


const FIRMWARE_CANDIDATES = [
  "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.bin",
  "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin",
  "/usr/lib/riscv64-linux-firmware/opensbi/fw_jump.bin",
  "/usr/share/qemu/opensbi-riscv64-generic-fw_dynamic.bin",
];

/** The qemu-system-riscv64 to compare with: $QEMU, else the first on PATH. */
export function findQemu(): string | undefined {
  const env = process.env.QEMU;
  if (env) return existsSync(env) ? env : undefined;
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, "qemu-system-riscv64");
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** An OpenSBI firmware for -bios; "default" (QEMU's bundled one) when none of the usual paths exists. */
export function findOpensbi(): string {
  return FIRMWARE_CANDIDATES.find((p) => existsSync(p)) ?? "default";
}

export class QemuSession extends ShellSession {
  readonly name = "qemu";
  private child: ChildProcess | undefined;
  private exited: Promise<void> | undefined;
  private readonly clkTck: number;
  stderr = "";

  constructor(private readonly opts: { qemu: string; bios: string; kernel: string; initrd: string; ramMiB: number }) {
    super();
    this.clkTck = 100; // USER_HZ: what /proc/<pid>/stat counts in on every Linux architecture
  }

  get commandLine(): string[] {
    const o = this.opts;
    // virtio-rng like Tabvisor's machine: without it the guest's crng is not ready when the benchmark reads
    // /dev/urandom, and Linux 6.1 then spends seconds generating jitter entropy (4 s of QEMU's 4.4 s gzip step).
    return [o.qemu, "-M", "virt", "-m", String(o.ramMiB), "-nographic", "-bios", o.bios,
      "-kernel", o.kernel, "-initrd", o.initrd, "-append", "console=ttyS0 hostname=tabvisor",
      "-device", "virtio-rng-device"];
  }

  protected startEmulator(): void {
    const [bin, ...args] = this.commandLine;
    const child = spawn(bin, args, { stdio: ["pipe", "pipe", "pipe"] });
    this.child = child;
    child.stdout!.on("data", (b: Buffer) => this.out.add(b));
    child.stderr!.on("data", (b: Buffer) => { this.stderr += b.toString(); });
    child.stdin!.on("error", () => {}); // EPIPE after it exits: reported through "exit"
    this.exited = new Promise((resolve) => {
      child.on("error", (e) => { this.out.fail(`cannot run ${bin}: ${e.message}`); resolve(); });
      child.on("exit", (code, signal) => {
        this.out.fail(`qemu exited (${signal ?? `status ${code}`})${this.stderr ? `: ${this.stderr.trim().slice(-300)}` : ""}`);
        resolve();
      });
    });
  }

  protected write(text: string): void { this.child!.stdin!.write(text); }

  counters(): Counters { return {}; }

  /** QEMU's CPU time (all threads) from /proc/<pid>/stat; undefined where there is no /proc */
  protected cpuMs(): number | undefined {
    const pid = this.child?.pid;
    if (pid === undefined) return undefined;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      // fields[0] is field 3 (state); utime and stime are fields 14 and 15
      return ((Number(fields[11]) + Number(fields[12])) * 1000) / this.clkTck;
    } catch {
      return undefined;
    }
  }

  async close(): Promise<void> {
    const child = this.child;
    if (!child || !this.exited) return;
    if (child.exitCode === null && child.signalCode === null) {
      if (!this.out.failure) child.stdin!.write("poweroff -f\n");
      const off = await Promise.race([this.exited.then(() => true), sleep(5_000).then(() => false)]);
      if (!off) {
        child.kill("SIGTERM");
        const gone = await Promise.race([this.exited.then(() => true), sleep(2_000).then(() => false)]);
        if (!gone) child.kill("SIGKILL");
      }
    }
    await this.exited;
  }
}
