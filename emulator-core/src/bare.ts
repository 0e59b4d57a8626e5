// Runs a bare-metal RISC-V ELF (riscv-tests, our own assembly tests, CPU benchmarks) with an HTIF tohost
// device: no firmware, no devices; the program starts in M-mode at its entry and ends by writing tohost.
//
// A program is not trusted: whatever it does, the run ends by tohost, a fatal stop or the timeout (checked after
// every stop of the hart, so a flood of console characters or device accesses cannot skip it), the console text
// kept for the result is bounded (the last `keepConsole` characters), and the instruction count is the host's
// own (minstret, which the program may write, is not used).

import { Hart, StopReason } from "./hart.ts";
import { computeLayout, RAM_BASE } from "./layout.ts";
import { parseElf, ElfError } from "./elf.ts";

export interface BareRunOptions {
  timeoutMs?: number;
  ramMiB?: number;
  /** Console output (HTIF device 1, command 1: one character each, as Latin-1), in chunks. Return false when the
   *  consumer is behind: runBareElf then holds the program until whenDrained() resolves (runBareElfWith, which is
   *  synchronous, cannot wait and goes on). */
  onConsole?: (s: string) => boolean | void;
  /** with onConsole returning false: resolves once the consumer can take more */
  whenDrained?: () => Promise<void>;
  /** instructions per run() call */
  sliceSize?: number;
  /** how many of the last console characters the result keeps (default 64 KiB) */
  keepConsole?: number;
}

export interface BareRunResult {
  status: "pass" | "fail" | "timeout" | "error";
  exitCode: number;
  /** instructions executed, as the host counted them (not minstret, which the program may have written) */
  instructions: bigint;
  hostMs: number;
  /** the last keepConsole characters of the console output */
  console: string;
  /** how many characters the program wrote to the console in all */
  consoleChars: number;
  message: string;
}

export class BareLoadError extends Error {}

const hex = (v: bigint) => `0x${v.toString(16)}`;

/** Loads the ELF into a fresh hart; throws BareLoadError with a one-line reason on bad input. */
export function loadBareElf(module: WebAssembly.Module, elf: Uint8Array, ramMiB = 64): { hart: Hart; tohost: bigint; fromhost?: bigint } {
  let image;
  try {
    image = parseElf(elf);
  } catch (e) {
    if (e instanceof ElfError) throw new BareLoadError(e.message);
    throw e;
  }
  const layout = computeLayout(ramMiB);
  const ramEnd = RAM_BASE + BigInt(layout.ramBytes);
  const ram = `RAM ${hex(RAM_BASE)}-${hex(ramEnd)}`;
  for (const s of image.segments) {
    if (s.paddr < RAM_BASE || s.paddr + s.memSize > ramEnd) {
      throw new BareLoadError(`segment at ${hex(s.paddr)} (${s.memSize} bytes) is outside ${ram}`);
    }
  }
  const inRam = (a: bigint) => a >= RAM_BASE && a + 8n <= ramEnd;
  const tohost = image.symbols.get("tohost");
  if (tohost === undefined) throw new BareLoadError("the ELF has no `tohost` symbol (needed to report its result)");
  if (!inRam(tohost)) throw new BareLoadError(`\`tohost\` (${hex(tohost)}) is outside ${ram}`);
  const fromhost = image.symbols.get("fromhost");
  if (fromhost !== undefined && !inRam(fromhost)) {
    throw new BareLoadError(`\`fromhost\` (${hex(fromhost)}) is outside ${ram}: the host could not answer there`);
  }
  const hart = new Hart(module, layout);
  for (const s of image.segments) hart.writePhys(s.paddr, s.data);
  hart.ex.reset(0, image.entry);
  hart.ex.setTohost(tohost);
  return { hart, tohost, fromhost };
}

/** Console characters are handed on in chunks of about this many (and at least once per slice). */
const CONSOLE_CHUNK = 4096;

/** A loaded program and its run so far; step() runs it until it ends or its console consumer is behind. */
class BareRun {
  private readonly t0 = performance.now();
  private readonly timeoutMs: number;
  private readonly slice: number;
  private readonly keep: number;
  private readonly ramView: DataView;
  private executed = 0n;
  private pending = "";
  private kept = "";
  private chars = 0;

  constructor(private readonly loaded: ReturnType<typeof loadBareElf>, private readonly opts: BareRunOptions, private readonly canWait: boolean) {
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    this.slice = opts.sliceSize ?? 1_000_000;
    this.keep = opts.keepConsole ?? 65536;
    const { hart } = loaded;
    this.ramView = new DataView(hart.memory.buffer, hart.layout.ramOffset, hart.layout.ramBytes);
  }

  result(status: BareRunResult["status"], exitCode: number, message: string): BareRunResult {
    this.flush();
    return {
      status, exitCode, instructions: this.executed, hostMs: performance.now() - this.t0,
      console: this.kept.slice(-this.keep), consoleChars: this.chars, message,
    };
  }

  /** time left before the timeout, in ms */
  get remainingMs(): number { return this.timeoutMs - (performance.now() - this.t0); }

  /** Hands pending console text on; false when the consumer is behind. */
  private flush(): boolean {
    if (!this.pending) return true;
    const s = this.pending;
    this.pending = "";
    this.kept += s;
    if (this.kept.length > 2 * this.keep) this.kept = this.kept.slice(-this.keep);
    return this.opts.onConsole?.(s) !== false;
  }

  /** Runs until the program ends (its result) or, when the runner can wait, until its console output is waiting
   *  for the consumer ("blocked"). */
  step(): BareRunResult | "blocked" {
    const { hart, tohost, fromhost } = this.loaded;
    const slice = this.slice;
    for (;;) {
      if (this.remainingMs < 0) {
        return this.result("timeout", -1, `timed out after ${this.timeoutMs} ms (pc 0x${hart.pc.toString(16)})`);
      }
      hart.state.mtime = this.executed / 10n; // a 10 MHz timer on a nominal 100 MIPS hart: deterministic
      const before = hart.instret;
      const why = hart.run(slice);
      // A slice stop spent the whole budget: exact, whatever the program does. Another stop spent part of it,
      // which only minstret tells, and the program may have written minstret in this call: a change that no call
      // can make (below 0, above the budget) counts nothing, so a write moves the count by less than one budget,
      // only for a call that stopped early, and never makes it negative or huge. (An exact count of those calls
      // needs a counter in the hart itself that no CSR writes.)
      const d = hart.instret - before;
      this.executed += why === StopReason.Slice ? BigInt(slice) : d >= 0n && d <= BigInt(slice) ? d : 0n;
      if (why === StopReason.Htif) {
        const v = hart.state.htifValue;
        this.ramView.setBigUint64(Number(tohost - RAM_BASE), 0n, true);
        const device = v >> 56n, cmd = (v >> 48n) & 0xffn;
        if (device === 0n && cmd === 0n && (v & 1n)) {
          const code = Number(v >> 1n);
          return code === 0 ? this.result("pass", 0, "pass") : this.result("fail", code, `failed test case ${code}`);
        }
        if (device === 1n && cmd === 1n) {
          this.pending += String.fromCharCode(Number(v & 0xffn));
          this.chars++;
          if (fromhost !== undefined) this.ramView.setBigUint64(Number(fromhost - RAM_BASE), 1n, true);
          if (this.pending.length >= CONSOLE_CHUNK && !this.flush() && this.canWait) return "blocked";
        }
        continue;
      }
      if (why === StopReason.Mmio) {
        hart.mmioFail(); // no devices on a bare machine: every non-RAM access faults
        continue;
      }
      if (why === StopReason.Fatal) return this.result("error", -1, "the hart stopped on a fatal error");
      // Slice or WFI: with no interrupt sources, a WFI just continues.
      if (!this.flush() && this.canWait) return "blocked";
    }
  }
}

function load(module: WebAssembly.Module, elf: Uint8Array, opts: BareRunOptions): ReturnType<typeof loadBareElf> | BareRunResult {
  try {
    return loadBareElf(module, elf, opts.ramMiB ?? 64);
  } catch (e) {
    if (e instanceof BareLoadError || e instanceof RangeError) {
      return { status: "error", exitCode: -1, instructions: 0n, hostMs: 0, console: "", consoleChars: 0, message: e.message };
    }
    throw e;
  }
}

/** Runs the program to its end, synchronously (the console consumer cannot hold it). */
export function runBareElfWith(module: WebAssembly.Module, elf: Uint8Array, opts: BareRunOptions = {}): BareRunResult {
  const loaded = load(module, elf, opts);
  if ("status" in loaded) return loaded;
  const r = new BareRun(loaded, opts, false).step();
  if (r === "blocked") throw new Error("unreachable: a run that cannot wait was blocked");
  return r;
}

/** Runs the program to its end, holding it while the console consumer is behind (opts.onConsole returned false)
 *  until opts.whenDrained() resolves; the timeout counts that time too. */
export async function runBareElfOn(module: WebAssembly.Module, elf: Uint8Array, opts: BareRunOptions = {}): Promise<BareRunResult> {
  const loaded = load(module, elf, opts);
  if ("status" in loaded) return loaded;
  const run = new BareRun(loaded, opts, opts.whenDrained !== undefined);
  for (;;) {
    const r = run.step();
    if (r !== "blocked") return r;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      opts.whenDrained!(),
      new Promise<void>((resolve) => { timer = setTimeout(resolve, Math.max(0, run.remainingMs) + 1); }),
    ]);
    clearTimeout(timer);
  }
}

/** Node convenience: runs with the compiled hart loaded from emulator-core/build (see node/hart-module.ts). */
export async function runBareElf(elf: Uint8Array, opts: BareRunOptions = {}): Promise<BareRunResult> {
  const { loadHartModule } = await import("./node/hart-module.ts");
  return runBareElfOn(loadHartModule(), elf, opts);
}
