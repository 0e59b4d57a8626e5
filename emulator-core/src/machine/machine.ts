// A whole RISC-V virtual machine in the style of QEMU's `virt` board: one RV64GC hart, RAM at 0x8000_0000,
// CLINT, PLIC, an NS16550A console UART, virtio-mmio slots, SBI firmware in the emulator and a generated device
// tree. The same class runs in Node and in a browser worker; the embedder drives it with runFor() and sleeps
// when it reports the guest idle.

import { Hart, StopReason } from "../hart.ts";
import { computeLayout, RAM_BASE } from "../layout.ts";
import { MmioBus, type MmioDevice } from "./bus.ts";
import { GuestMemory } from "./guest-memory.ts";
import { Plic, PLIC_SIZE } from "./plic.ts";
import { Uart16550 } from "./uart.ts";
import { Clint, CLINT_SIZE } from "./clint.ts";
import { sbiCall, type SbiHost } from "./sbi.ts";
import { buildDtb, node, cells, u64cells, type FdtNode } from "./fdt.ts";
import { parseLinuxImage, checkInitrd, BootError } from "./linux-image.ts";
import { VirtioMmio } from "./virtio/mmio.ts";
import { VirtioBlk, type VirtioBlkOptions } from "./virtio/blk.ts";
import { VirtioNet, type VirtioNetOptions } from "./virtio/net.ts";
import { VirtioRng } from "./virtio/rng.ts";
import type { BlockBackend } from "./virtio/backends.ts";

export { BootError };

export const CLINT_BASE = 0x0200_0000n;
export const PLIC_BASE = 0x0c00_0000n;
export const UART_BASE = 0x1000_0000n;
export const UART_IRQ = 10;
export const VIRTIO_BASE = 0x1000_1000n;
export const VIRTIO_STRIDE = 0x1000n;
export const VIRTIO_SLOTS = 8;
export const TIMEBASE_HZ = 10_000_000;

const IRQ_SSIP = 1n << 1n;
const IRQ_MSIP = 1n << 3n;
const IRQ_STIP = 1n << 5n;
const IRQ_MTIP = 1n << 7n;
const IRQ_SEIP = 1n << 9n;
const IRQ_MEIP = 1n << 11n;

/** Instructions per run() call: about a millisecond of guest time, the granularity of timer checks. */
const SLICE = 250_000;

export interface MachineConfig {
  ramMiB?: number;
  /** mtime follows retired instructions (1 tick per 10) instead of host time: repeatable runs */
  deterministic?: boolean;
  /** called with console output (batched) */
  onConsole?: (bytes: Uint8Array) => void;
}

export interface BootConfig {
  kernel: Uint8Array;
  initrd?: Uint8Array;
  cmdline?: string;
}

export type MachineState = "running" | "halted";

export interface RunOutcome {
  /** "slice": time budget used; "idle": the guest waits (WFI) until wakeAtMs or an event; "halted": powered off */
  kind: "slice" | "idle" | "halted";
  /** with "idle": host time (performance.now() scale) of the next timer deadline, or Infinity */
  wakeAtMs?: number;
}

export class Machine {
  readonly hart: Hart;
  readonly memory: GuestMemory;
  readonly bus = new MmioBus();
  readonly plic: Plic;
  readonly uart: Uart16550;
  readonly clint: Clint;
  readonly ramMiB: number;
  private readonly deterministic: boolean;
  private virtioSlotsUsed = 0;
  private readonly virtioNodes: FdtNode[] = [];
  private plicLines = 0n;
  private timerDeadline = ~0n >> 1n; // SBI set_timer value (mtime ticks)
  private startMs = performance.now();
  private idleSkipTicks = 0n; // deterministic mode: time skipped over while idle
  /** exit status once halted: 0 for a clean poweroff, 1 when the guest reported failure, 2 on a hart fault,
   *  3 when the guest kernel panicked */
  exitStatus: number | undefined;
  haltReason = "";
  rebootRequested = false;
  busyMs = 0;
  idleMs = 0;

  constructor(module: WebAssembly.Module, config: MachineConfig = {}) {
    this.ramMiB = config.ramMiB ?? 256;
    this.deterministic = config.deterministic ?? false;
    this.hart = new Hart(module, computeLayout(this.ramMiB));
    this.memory = new GuestMemory(this.hart.memory.buffer, this.hart.layout.ramOffset, this.hart.layout.ramBytes, RAM_BASE);
    this.plic = new Plic((meip, seip) => {
      this.plicLines = (meip ? IRQ_MEIP : 0n) | (seip ? IRQ_SEIP : 0n);
      this.updateLines();
    });
    const onConsole = config.onConsole ?? (() => {});
    this.uart = new Uart16550(this.plic.line(UART_IRQ), (bytes) => { this.watchForPanic(bytes); onConsole(bytes); });
    this.clint = new Clint(() => this.mtime(), () => this.updateLines());
    this.bus.map(CLINT_BASE, this.clint, "clint");
    this.bus.map(PLIC_BASE, this.plic, "plic");
    this.bus.map(UART_BASE, this.uart, "uart");
  }

  /** Plugs a device into the next free virtio-mmio slot; `make` receives the slot's interrupt line. */
  addVirtio(make: (irq: { set(level: boolean): void }) => MmioDevice, name: string): number {
    if (this.virtioSlotsUsed >= VIRTIO_SLOTS) throw new Error(`no free virtio slot for ${name}`);
    const slot = this.virtioSlotsUsed++;
    const irq = 1 + slot;
    const base = VIRTIO_BASE + VIRTIO_STRIDE * BigInt(slot);
    this.bus.map(base, make(this.plic.line(irq)), name);
    this.virtioNodes.push(node(`virtio_mmio@${base.toString(16)}`, [
      ["compatible", "virtio,mmio"],
      ["reg", [...u64cells(base), ...u64cells(VIRTIO_STRIDE)]],
      ["interrupts", cells(irq)],
      ["interrupt-parent", cells(PLIC_PHANDLE)],
    ]));
    return slot;
  }

  /** A virtio-blk disk (appears as /dev/vda, vdb, ... in plug order). */
  addDisk(backend: BlockBackend, opts: VirtioBlkOptions = {}): VirtioBlk {
    const blk = new VirtioBlk(backend, opts);
    this.addVirtio((irq) => new VirtioMmio(this.memory, irq, blk), "virtio-blk");
    return blk;
  }

  /** A virtio-net card; frames the guest sends go to opts.backend, frames for it go in with receive(). */
  addNic(opts: VirtioNetOptions = {}): VirtioNet {
    const net = new VirtioNet(opts);
    this.addVirtio((irq) => new VirtioMmio(this.memory, irq, net), "virtio-net");
    this.nics.push(net);
    return net;
  }

  addRng(): VirtioRng {
    const rng = new VirtioRng();
    this.addVirtio((irq) => new VirtioMmio(this.memory, irq, rng), "virtio-rng");
    return rng;
  }

  readonly nics: VirtioNet[] = [];

  // A panicked kernel spins forever; the console is where it says so. The machine halts (status 3) with the
  // panic message, so embedders show the VM as crashed instead of leaving a core spinning.
  private consoleTail = "";
  private readonly panicDecoder = new TextDecoder();
  private watchForPanic(bytes: Uint8Array): void {
    const text = this.consoleTail + this.panicDecoder.decode(bytes, { stream: true });
    const at = text.indexOf("Kernel panic - not syncing");
    if (at >= 0) {
      const end = text.indexOf("\n", at);
      if (end < 0 && text.length - at < 200) { this.consoleTail = text.slice(at); return; } // wait for the whole line
      this.halt(3, text.slice(at, end < 0 ? undefined : end).trim());
      this.consoleTail = "";
      return;
    }
    this.consoleTail = text.slice(-40);
  }

  // ---- time ---------------------------------------------------------------------------------------------------
  mtime(): bigint {
    if (this.deterministic) return this.hart.instret / 10n + this.idleSkipTicks;
    return BigInt(Math.floor((performance.now() - this.startMs) * (TIMEBASE_HZ / 1000)));
  }
  private ticksToMs(ticks: bigint): number { return Number(ticks) / (TIMEBASE_HZ / 1000); }

  private updateLines(): void {
    const now = this.mtime();
    this.hart.ex.setMtime(now); // the time CSR reads this until the next update
    let lines = this.plicLines;
    if (now >= this.timerDeadline) lines |= IRQ_STIP;
    if (this.clint.timerPending(now)) lines |= IRQ_MTIP;
    if (this.clint.msip) lines |= IRQ_MSIP;
    this.hart.ex.setInterruptLines(lines);
  }

  // ---- boot ---------------------------------------------------------------------------------------------------
  /** Loads a Linux Image (and initramfs) with a generated device tree; the hart starts in S-mode at the kernel. */
  bootLinux(boot: BootConfig): void {
    const info = parseLinuxImage(boot.kernel);
    if (boot.initrd) checkInitrd(boot.initrd);
    const ramBytes = BigInt(this.hart.layout.ramBytes);
    const ramEnd = RAM_BASE + ramBytes;
    const kernelAddr = RAM_BASE + info.textOffset;
    const kernelEnd = kernelAddr + info.imageSize;
    const cmdline = boot.cmdline ?? "console=ttyS0";
    // The DTB's size does not depend on the addresses in it: build once to size it, then for real.
    const dtbSize = BigInt(buildDtb(this.deviceTree(cmdline, 0n, 0n)).length);
    const dtbAddr = (ramEnd - dtbSize - 0x1000n) & ~0xfffn;
    let initrdStart = 0n, initrdEnd = 0n;
    if (boot.initrd) {
      initrdStart = (dtbAddr - BigInt(boot.initrd.length)) & ~0xfffn;
      initrdEnd = initrdStart + BigInt(boot.initrd.length);
    }
    // Linux needs room beyond its image for early allocations; ask for at least 16 MiB more than it all takes.
    const lowestPlaced = boot.initrd ? initrdStart : dtbAddr;
    if (lowestPlaced < kernelEnd + 16n * 1024n * 1024n) {
      const needMiB = Number((kernelEnd - RAM_BASE + BigInt(boot.initrd?.length ?? 0) + dtbSize + 16n * 1024n * 1024n) >> 20n) + 1;
      throw new BootError(`${this.ramMiB} MiB of RAM is too little for this kernel and initrd: give at least ${needMiB} MiB`);
    }
    this.hart.writePhys(kernelAddr, boot.kernel);
    if (boot.initrd) this.hart.writePhys(initrdStart, boot.initrd);
    this.hart.writePhys(dtbAddr, buildDtb(this.deviceTree(cmdline, initrdStart, initrdEnd)));

    const ex = this.hart.ex;
    ex.reset(0, kernelAddr);
    // What the SBI firmware would have set up before entering the kernel: every trap and interrupt the
    // supervisor handles is delegated to it, and the counters are readable from S-mode. Only ECALLs from S
    // (SBI calls) reach M-mode, and the emulator answers those itself.
    ex.setMedeleg(0xb1ffn & ~(1n << 9n) & ~(1n << 11n));
    ex.setMideleg(IRQ_SSIP | IRQ_STIP | IRQ_SEIP);
    ex.setMcounteren(7n);
    ex.setScounteren(7n); // as OpenSBI leaves it: Linux 6.1 never writes it, and its vDSO reads time from U-mode
    ex.setSbiInHost(1);
    ex.setPriv(1);
    this.hart.setReg(10, 0n);
    this.hart.setReg(11, dtbAddr);
    this.startMs = performance.now();
    this.exitStatus = undefined;
  }

  private deviceTree(cmdline: string, initrdStart: bigint, initrdEnd: bigint): FdtNode {
    const ramBytes = BigInt(this.hart.layout.ramBytes);
    const chosen: [string, string | number[]][] = [["bootargs", cmdline], ["stdout-path", `/soc/serial@${UART_BASE.toString(16)}`]];
    if (initrdEnd > initrdStart) {
      chosen.push(["linux,initrd-start", u64cells(initrdStart)], ["linux,initrd-end", u64cells(initrdEnd)]);
    }
    return node("", [
      ["#address-cells", cells(2)], ["#size-cells", cells(2)],
      ["compatible", "riscv-virtio"], ["model", "tabvisor,virt"],
    ], [
      node("chosen", chosen),
      node(`memory@${RAM_BASE.toString(16)}`, [["device_type", "memory"], ["reg", [...u64cells(RAM_BASE), ...u64cells(ramBytes)]]]),
      node("cpus", [["#address-cells", cells(1)], ["#size-cells", cells(0)], ["timebase-frequency", cells(TIMEBASE_HZ)]], [
        node("cpu@0", [
          ["device_type", "cpu"], ["reg", cells(0)], ["status", "okay"], ["compatible", "riscv"],
          ["riscv,isa", "rv64imafdc_zicsr_zifencei"],
          ["riscv,isa-base", "rv64i"],
          ["riscv,isa-extensions", ["i", "m", "a", "f", "d", "c", "zicsr", "zifencei", "zicntr"]],
          ["mmu-type", "riscv,sv48"],
        ], [
          node("interrupt-controller", [
            ["#interrupt-cells", cells(1)], ["interrupt-controller", null], ["compatible", "riscv,cpu-intc"],
            ["phandle", cells(CPU_INTC_PHANDLE)],
          ]),
        ]),
      ]),
      node("soc", [["#address-cells", cells(2)], ["#size-cells", cells(2)], ["compatible", "simple-bus"], ["ranges", null]], [
        node(`clint@${CLINT_BASE.toString(16)}`, [
          ["compatible", ["sifive,clint0", "riscv,clint0"]],
          ["reg", [...u64cells(CLINT_BASE), ...u64cells(BigInt(CLINT_SIZE))]],
          ["interrupts-extended", cells(CPU_INTC_PHANDLE, 3, CPU_INTC_PHANDLE, 7)],
        ]),
        node(`plic@${PLIC_BASE.toString(16)}`, [
          ["compatible", ["sifive,plic-1.0.0", "riscv,plic0"]],
          ["reg", [...u64cells(PLIC_BASE), ...u64cells(BigInt(PLIC_SIZE))]],
          ["#address-cells", cells(0)], ["#interrupt-cells", cells(1)], ["interrupt-controller", null],
          ["riscv,ndev", cells(31)],
          ["interrupts-extended", cells(CPU_INTC_PHANDLE, 11, CPU_INTC_PHANDLE, 9)],
          ["phandle", cells(PLIC_PHANDLE)],
        ]),
        node(`serial@${UART_BASE.toString(16)}`, [
          ["compatible", "ns16550a"], ["reg", [...u64cells(UART_BASE), ...u64cells(0x100n)]],
          ["clock-frequency", cells(3686400)], ["interrupts", cells(UART_IRQ)], ["interrupt-parent", cells(PLIC_PHANDLE)],
        ]),
        ...this.virtioNodes,
      ]),
    ]);
  }

  // ---- running ------------------------------------------------------------------------------------------------
  get halted(): boolean { return this.exitStatus !== undefined; }

  private halt(status: number, reason: string): void {
    if (this.exitStatus === undefined) { this.exitStatus = status; this.haltReason = reason; }
  }

  /** Runs the guest for up to budgetMs of host time. */
  runFor(budgetMs: number): RunOutcome {
    if (this.halted) return { kind: "halted" };
    const t0 = performance.now();
    const ex = this.hart.ex;
    try {
      for (;;) {
        this.updateLines();
        const why = this.hart.run(SLICE) as StopReason;
        switch (why) {
          case StopReason.Mmio: this.handleMmio(); break;
          case StopReason.Ecall: this.handleSbi(); break;
          case StopReason.Wfi: {
            // The hart only stops on WFI when no enabled interrupt is pending.
            const now = this.mtime();
            if (this.deterministic) {
              // jump to the next deadline: idle time costs nothing in deterministic mode
              if (this.timerDeadline > now && this.timerDeadline < now + 10n * BigInt(TIMEBASE_HZ)) {
                this.idleSkipTicks += this.timerDeadline - now;
              }
              break;
            }
            this.uart.flush();
            this.busyMs += performance.now() - t0;
            const wakeAtMs = this.timerDeadline > now + 3600n * BigInt(TIMEBASE_HZ)
              ? Infinity : performance.now() + this.ticksToMs(this.timerDeadline - now);
            return { kind: "idle", wakeAtMs };
          }
          case StopReason.Fatal:
            this.halt(2, `the hart stopped: trap loop at pc 0x${ex.getPc().toString(16)} (mcause ${ex.getMcause()}, mtval 0x${ex.getMtval().toString(16)})`);
            break;
          case StopReason.Htif: break;
          case StopReason.Slice: break;
        }
        if (this.halted) break;
        // Checked after every stop, not only full slices: a guest polling a device stops on each access.
        if (performance.now() - t0 >= budgetMs) break;
      }
    } finally {
      this.uart.flush();
    }
    this.busyMs += performance.now() - t0;
    return this.halted ? { kind: "halted" } : { kind: "slice" };
  }

  private handleMmio(): void {
    const ex = this.hart.ex;
    const addr = ex.getMmioAddr();
    const size = ex.getMmioSize();
    if (ex.getMmioIsStore()) {
      if (this.bus.write(addr, size, ex.getMmioData())) ex.mmioComplete(0n);
      else ex.mmioFail();
    } else {
      const v = this.bus.read(addr, size);
      if (v === undefined) ex.mmioFail();
      else ex.mmioComplete(v);
    }
  }

  private readonly sbiHost: SbiHost = {
    setTimer: (deadline) => { this.timerDeadline = deadline; this.updateLines(); },
    putchar: (byte) => this.uart.write(0, 1, byte),
    getchar: () => (this.uart.rxPending > 0 ? this.uart.read(0, 1) : -1),
    fenceI: () => this.hart.ex.invalidateDecoded(),
    sfenceVma: () => this.hart.ex.flushTlb(),
    sendSoftwareInterrupt: () => { /* one hart: nothing to signal */ },
    clearSoftwareInterrupt: () => {},
    reset: (type, reason) => {
      if (type === 0) this.halt(reason === 0 ? 0 : 1, reason === 0 ? "powered off" : "the guest reported a system failure");
      else { this.rebootRequested = true; this.halt(0, "reboot requested"); }
    },
  };

  private handleSbi(): void {
    const h = this.hart;
    const args = [10, 11, 12, 13, 14, 15].map((r) => h.reg(r));
    const r = sbiCall(this.sbiHost, { eid: h.reg(17), fid: h.reg(16), args });
    h.setReg(10, BigInt.asUintN(64, r.error));
    if (!r.legacy) h.setReg(11, BigInt.asUintN(64, r.value));
  }

  /** Console input (typed bytes). */
  sendInput(bytes: Uint8Array): void { this.uart.input(bytes); this.updateLines(); }
}

const CPU_INTC_PHANDLE = 1;
const PLIC_PHANDLE = 2;
