// Runs a bare-metal RISC-V ELF (riscv-tests, our own assembly tests, CPU benchmarks) with an HTIF tohost
// device: no firmware, no devices; the program starts in M-mode at its entry and ends by writing tohost.

import { Hart, StopReason } from "./hart.ts";
import { computeLayout, RAM_BASE } from "./layout.ts";
import { parseElf, ElfError } from "./elf.ts";

export interface BareRunOptions {
  timeoutMs?: number;
  ramMiB?: number;
  onConsole?: (s: string) => void;
  /** instructions per run() call; the timeout is checked between calls */
  sliceSize?: number;
}

export interface BareRunResult {
  status: "pass" | "fail" | "timeout" | "error";
  exitCode: number;
  instret: bigint;
  hostMs: number;
  console: string;
  message: string;
}

export class BareLoadError extends Error {}

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
  for (const s of image.segments) {
    if (s.paddr < RAM_BASE || s.paddr + s.memSize > ramEnd) {
      throw new BareLoadError(
        `segment at 0x${s.paddr.toString(16)} (${s.memSize} bytes) is outside RAM 0x${RAM_BASE.toString(16)}-0x${ramEnd.toString(16)}`);
    }
  }
  const tohost = image.symbols.get("tohost");
  if (tohost === undefined) throw new BareLoadError("the ELF has no `tohost` symbol (needed to report its result)");
  if (tohost < RAM_BASE || tohost + 8n > ramEnd) throw new BareLoadError("`tohost` is outside RAM");
  const hart = new Hart(module, layout);
  for (const s of image.segments) hart.writePhys(s.paddr, s.data);
  hart.ex.reset(0, image.entry);
  hart.ex.setTohost(tohost);
  return { hart, tohost, fromhost: image.symbols.get("fromhost") };
}

export function runBareElfWith(module: WebAssembly.Module, elf: Uint8Array, opts: BareRunOptions = {}): BareRunResult {
  const t0 = performance.now();
  const result = (status: BareRunResult["status"], exitCode: number, instret: bigint, console: string, message: string): BareRunResult =>
    ({ status, exitCode, instret, hostMs: performance.now() - t0, console, message });
  let loaded;
  try {
    loaded = loadBareElf(module, elf, opts.ramMiB ?? 64);
  } catch (e) {
    if (e instanceof BareLoadError || e instanceof RangeError) return result("error", -1, 0n, "", e.message);
    throw e;
  }
  const { hart, tohost, fromhost } = loaded;
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const slice = opts.sliceSize ?? 1_000_000;
  let consoleText = "";
  const ramView = new DataView(hart.memory.buffer, hart.layout.ramOffset, hart.layout.ramBytes);
  const clearWord = (addr: bigint) => ramView.setBigUint64(Number(addr - RAM_BASE), 0n, true);
  for (;;) {
    hart.state.mtime = hart.instret / 10n; // a 10 MHz timer on a nominal 100 MIPS hart: deterministic
    const why = hart.run(slice);
    if (why === StopReason.Htif) {
      const v = hart.state.htifValue;
      clearWord(tohost);
      const device = v >> 56n, cmd = (v >> 48n) & 0xffn;
      if (device === 0n && cmd === 0n && (v & 1n)) {
        const code = Number(v >> 1n);
        return code === 0
          ? result("pass", 0, hart.instret, consoleText, "pass")
          : result("fail", code, hart.instret, consoleText, `failed test case ${code}`);
      }
      if (device === 1n && cmd === 1n) {
        const ch = String.fromCharCode(Number(v & 0xffn));
        consoleText += ch;
        opts.onConsole?.(ch);
        if (fromhost !== undefined) ramView.setBigUint64(Number(fromhost - RAM_BASE), 1n, true);
      }
      continue;
    }
    if (why === StopReason.Mmio) {
      hart.mmioFail(); // no devices on a bare machine: every non-RAM access faults
      continue;
    }
    if (why === StopReason.Fatal) return result("error", -1, hart.instret, consoleText, "the hart stopped on a fatal error");
    // Slice or WFI: with no interrupt sources, a WFI just continues.
    if (performance.now() - t0 > timeoutMs) {
      return result("timeout", -1, hart.instret, consoleText, `timed out after ${timeoutMs} ms (pc 0x${hart.pc.toString(16)})`);
    }
  }
}

/** Node convenience: runs with the compiled hart loaded from emulator-core/build (see node/hart-module.ts). */
export async function runBareElf(elf: Uint8Array, opts: BareRunOptions = {}): Promise<BareRunResult> {
  const { loadHartModule } = await import("./node/hart-module.ts");
  return runBareElfWith(loadHartModule(), elf, opts);
}
