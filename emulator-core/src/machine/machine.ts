// A whole RISC-V virtual machine in the style of QEMU's `virt` board: one RV64GC hart, RAM at 0x8000_0000,
// CLINT, PLIC, an NS16550A console UART, virtio-mmio slots, SBI firmware in the emulator and a generated device
// tree. The same class runs in Node and in a browser worker. Embedders describe the machine (description.ts) and
// Machine.create() builds the board from that; a MachineRunner (runner.ts) drives it with runFor() and sleeps when
// it reports the guest idle. A guest reboot happens in place: same memory, same device objects.

import { Hart, StopReason } from "../hart.ts";
import { HART_FIELDS } from "../hart-state.ts";
import { computeLayout, RAM_BASE } from "../layout.ts";
import { MmioBus, type MmioValue } from "./bus.ts";
import { MachineClock, TIMEBASE_HZ } from "./clock.ts";
import { StateReader, type StateObject, type StateValue } from "../snapshot/state-value.ts";
import { quiesce, saveMachine, restoreMachine, type MachineParts } from "../snapshot/machine-state.ts";
import { nonZeroPages, PAGE_SIZE } from "../snapshot/ram.ts";
import { ConsoleInput, type ConsoleInputSink } from "./console-input.ts";
import { DirtyLog } from "./dirty-log.ts";
import { GuestMemory } from "./guest-memory.ts";
import { Plic, PLIC_SIZE } from "./plic.ts";
import { Uart16550 } from "./uart.ts";
import { Clint, CLINT_SIZE } from "./clint.ts";
import { sbiCall, type SbiHost } from "./sbi.ts";
import { buildDtb, node, cells, u64cells, type FdtNode } from "./fdt.ts";
import { parseLinuxImage, checkInitrd, BootError, type LinuxImageInfo } from "./linux-image.ts";
import {
  validateSpec, virtioDevices, MachineSpecError, VIRTIO_BASE, VIRTIO_STRIDE, VIRTIO_SLOTS,
  type MachineSpec, type MachineAttachments, type BootImages, type VirtioSlot,
} from "./description.ts";
import type { RegionCompiler } from "../jit/region-compiler.ts";
import { DEFAULT_JIT_START_AFTER } from "../jit/tier.ts";
import { VirtioMmio, type VirtioDevice } from "./virtio/mmio.ts";
import { VirtioBlk } from "./virtio/blk.ts";
import { VirtioNet } from "./virtio/net.ts";
import { VirtioRng } from "./virtio/rng.ts";
import { VirtioBalloon } from "./virtio/balloon.ts";
import { VirtioConsole } from "./virtio/console.ts";
import { baseBacked } from "./virtio/backends.ts";

export { BootError, MachineSpecError, VIRTIO_BASE, VIRTIO_STRIDE, VIRTIO_SLOTS };

export const CLINT_BASE = 0x0200_0000n;
export const PLIC_BASE = 0x0c00_0000n;
export const UART_BASE = 0x1000_0000n;
export const UART_IRQ = 10;
/** The agent port: a second 16550 (the guest's /dev/ttyS1) on which the host and the guest's /init agent talk,
 *  one line each way (identity after a restore or a fork; see guest/rootfs/init). */
export const AGENT_UART_BASE = 0x1000_0100n;
export const AGENT_UART_IRQ = 11;
export { TIMEBASE_HZ };

const IRQ_SSIP = 1n << 1n;
const IRQ_MSIP = 1n << 3n;
const IRQ_STIP = 1n << 5n;
const IRQ_MTIP = 1n << 7n;
const IRQ_SEIP = 1n << 9n;
const IRQ_MEIP = 1n << 11n;

/** no timer set: the largest signed 64-bit value, as a firmware leaves mtimecmp at reset */
const NO_DEADLINE = (1n << 63n) - 1n;

const INSTRET_OFFSET = HART_FIELDS.instret.offset;
const MMIO_ADDR = HART_FIELDS.mmioAddr.offset;
const MMIO_DATA = HART_FIELDS.mmioData.offset;
const MMIO_SIZE = HART_FIELDS.mmioSize.offset;
const MMIO_IS_STORE = HART_FIELDS.mmioIsStore.offset;
/** MMIO stops, and guest instructions, between looks at the host clock while the guest keeps stopping on MMIO */
const CLOCK_EVERY_STOPS = 16;
const CLOCK_EVERY_INSTRUCTIONS = 2_000;
/** register values device reads mostly return (status bytes, IDs), made once rather than a BigInt per read */
const SMALL_VALUES = Array.from({ length: 256 }, (_, i) => BigInt(i));

/** Instructions per run() call: about a millisecond of guest time, the granularity of timer checks. */
const SLICE = 250_000;

export type MachineState = "running" | "halted";

/** How the host runs the machine (not part of its description: a snapshot does not carry it). */
export interface MachineOptions {
  /** compile hot guest code to WebAssembly (src/jit/README.md); default false */
  jit?: boolean;
  /** with jit: executions of a block before it is compiled (1: all code, on first execution) */
  jitThreshold?: number;
  /** with jit: instructions retired before the JIT starts (default DEFAULT_JIT_START_AFTER, src/jit/tier.ts: the
   *  first part of a boot is interpreted; blank(): 0; 0: from the first instruction) */
  jitStartAfter?: number;
  /** with jit: builds regions off the machine's thread (src/jit/region-compiler.ts); the embedder owns it (one for
   *  the machines it builds in turn) and closes it. Without one, regions are built on the machine's thread. */
  jitCompiler?: RegionCompiler;
}

export interface RunOutcome {
  /** "slice": time budget used; "idle": the guest waits (WFI) until wakeAtMs or an event; "halted": powered off
   *  (or crashed); "rebooted": the guest asked for a reboot and the machine has started over in place */
  kind: "slice" | "idle" | "halted" | "rebooted";
  /** with "idle": host time (performance.now() scale) of the next timer deadline, or Infinity */
  wakeAtMs?: number;
}

export class Machine {
  readonly spec: MachineSpec;
  readonly hart: Hart;
  readonly memory: GuestMemory;
  readonly ramMiB: number;
  readonly bus = new MmioBus();
  readonly plic: Plic;
  readonly uart: Uart16550;
  readonly clint: Clint;
  /** the virtio devices in slot order, each with its transport */
  readonly virtio: readonly { slot: VirtioSlot; transport: VirtioMmio; device: VirtioDevice }[];
  /** the disks (spec.disks order: /dev/vda, vdb, ...) */
  readonly disks: readonly VirtioBlk[];
  /** the network cards (spec.nics order: eth0, eth1, ...); feed frames with receive(), set backend for tx */
  readonly nics: readonly VirtioNet[];
  readonly rng: VirtioRng | undefined;
  readonly balloon: VirtioBalloon | undefined;
  /** the control channel's port (spec.agent): what emulator-core/src/agent's AgentClient talks through */
  readonly agentChannel: VirtioConsole | undefined;
  /** exit status once halted: 0 for a clean poweroff, 1 when the guest reported failure, 2 on a hart fault,
   *  3 when the guest kernel panicked */
  exitStatus: number | undefined;
  haltReason = "";
  /** host time spent running and idling the guest; these keep counting across reboots */
  busyMs = 0;
  idleMs = 0;
  /** reboots so far (by the guest or reboot()) */
  reboots = 0;
  /** the guest has asked the SBI for console input (an hvc0 console) since it booted */
  sbiConsoleInput = false;

  private readonly deterministic: boolean;
  private readonly boot: BootImages;
  private readonly kernelInfo: LinuxImageInfo;
  private readonly onConsole: (bytes: Uint8Array) => void;
  private readonly virtioNodes: FdtNode[];
  /** the PLIC and UART as they are at power-on, put back on every reboot */
  private readonly powerOnState: { plic: StateValue; uart: StateValue; agent: StateValue };
  private plicLines = 0n;
  private timerDeadline = NO_DEADLINE; // SBI set_timer value (mtime ticks)
  private readonly clock: MachineClock;
  private rebootPending = false;
  /** The hart stopped on WFI and no interrupt has come since: runFor() leaves it waiting instead of running the
   *  instructions after the WFI (a guest's idle loop, which would only wait again) when the host wakes it early. */
  private waitingForInterrupt = false;

  /** Builds the board a description asks for and loads the boot images; the hart starts at the kernel on the
   *  first runFor(). Throws MachineSpecError for a bad description (or attachments that do not match it),
   *  BootError for images that cannot boot, RangeError when the memory cannot be had. */
  static create(module: WebAssembly.Module, spec: MachineSpec, attachments: MachineAttachments, options: MachineOptions = {}): Machine {
    const m = new Machine(module, validateSpec(spec), attachments, options);
    m.powerOn();
    return m;
  }

  private constructor(module: WebAssembly.Module, spec: MachineSpec, att: MachineAttachments, options: MachineOptions) {
    this.spec = spec;
    this.ramMiB = spec.ramMiB;
    this.deterministic = spec.deterministic;
    this.kernelInfo = parseLinuxImage(att.boot.kernel);
    if (att.boot.initrd) checkInitrd(att.boot.initrd);
    this.boot = { kernel: att.boot.kernel, initrd: att.boot.initrd };
    this.onConsole = att.onConsole ?? (() => {});
    checkAttachments(spec, att);
    this.hart = new Hart(module, computeLayout(this.ramMiB));
    if (options.jit) {
      const startAfter = options.jitStartAfter ?? DEFAULT_JIT_START_AFTER;
      this.hart.enableJit({ threshold: options.jitThreshold, compiler: options.jitCompiler, startAfter });
    }
    this.clock = new MachineClock(this.deterministic, () => this.hart.instret);
    this.memory = new GuestMemory(this.hart.memory.buffer, this.hart.layout.ramOffset, this.hart.layout.ramBytes, RAM_BASE);
    this.hart.watchDeviceWrites(this.memory);
    this.plic = new Plic((meip, seip) => {
      this.plicLines = (meip ? IRQ_MEIP : 0n) | (seip ? IRQ_SEIP : 0n);
      this.updateLines();
    });
    const clock = { clock: () => this.instructions() };
    this.uart = new Uart16550(this.plic.line(UART_IRQ), (bytes) => { this.watchForPanic(bytes); this.onConsole(bytes); }, clock);
    this.clint = new Clint(() => this.mtime(), () => this.updateLines());
    this.bus.map(CLINT_BASE, this.clint, "clint");
    this.bus.map(PLIC_BASE, this.plic, "plic");
    this.bus.map(UART_BASE, this.uart, "uart");
    this.agentPort = new Uart16550(this.plic.line(AGENT_UART_IRQ), (bytes) => this.agentOutput(bytes), clock);
    (this.agentSink as { uart: Uart16550 }).uart = this.agentPort;
    this.bus.map(AGENT_UART_BASE, this.agentPort, "agent-uart");

    const disks: VirtioBlk[] = [], nics: VirtioNet[] = [];
    let rng: VirtioRng | undefined, balloon: VirtioBalloon | undefined, agentChannel: VirtioConsole | undefined;
    const virtio = virtioDevices(spec).map((slot) => {
      let device: VirtioDevice;
      switch (slot.kind) {
        case "disk": {
          const d = spec.disks[slot.index];
          device = new VirtioBlk(att.disks![slot.index], { readOnly: d.readOnly, serial: d.serial, onAsyncCompletion: att.wake });
          disks.push(device as VirtioBlk);
          break;
        }
        case "nic": {
          const host = att.nics?.[slot.index];
          device = new VirtioNet({ mac: spec.nics[slot.index].mac, backend: host?.backend, linkUp: host?.linkUp });
          nics.push(device as VirtioNet);
          break;
        }
        case "rng": device = rng = new VirtioRng(att.entropy); break;
        case "balloon": device = balloon = new VirtioBalloon(spec.balloon === true ? {} : spec.balloon || {}); break;
        case "agent": device = agentChannel = new VirtioConsole(); break;
      }
      const transport = new VirtioMmio(this.memory, this.plic.line(slot.irq), device);
      this.bus.map(slot.base, transport, `virtio-${slot.kind}`);
      return { slot, transport, device };
    });
    this.virtio = virtio;
    this.disks = disks;
    this.nics = nics;
    this.rng = rng;
    this.balloon = balloon;
    this.agentChannel = agentChannel;
    this.virtioNodes = virtio.map(({ slot }) => node(`virtio_mmio@${slot.base.toString(16)}`, [
      ["compatible", "virtio,mmio"],
      ["reg", [...u64cells(slot.base), ...u64cells(VIRTIO_STRIDE)]],
      ["interrupts", cells(slot.irq)],
      ["interrupt-parent", cells(PLIC_PHANDLE)],
    ]));
    this.powerOnState = { plic: this.plic.saveState(), uart: this.uart.saveState(), agent: this.agentPort.saveState() };
  }

  /** Devices as at power-on. The virtio transports reset themselves (status, features, queues, interrupt) and
   *  their devices (a card's backlog, the balloon's pages; counters and the balloon's target stay). The PLIC and
   *  UART get back the state they were built with; the CLINT's registers are written back to their reset values
   *  (no software interrupt, no timer). */
  private resetDevices(): void {
    for (const v of this.virtio) v.transport.reset();
    const txBytes = this.uart.txBytes; // a counter, not state the guest sees
    this.uart.restoreState(this.powerOnState.uart); // hands on the output still buffered first
    this.uart.txBytes = txBytes;
    this.clint.write(0x0000, 4, 0);          // msip
    this.clint.write(0x4000, 4, 0xffffffff); // mtimecmp, low word
    this.clint.write(0x4004, 4, 0x7fffffff); // mtimecmp, high word
    this.agentPort.restoreState(this.powerOnState.agent);
    this.agentText = "";
    this.plic.restoreState(this.powerOnState.plic);
    this.consoleTail = "";
  }

  /**
   * Power-cycles the machine in place, as a guest `reboot` does: the devices are reset, guest RAM is cleared, the
   * kernel, initrd and device tree are loaded again and the hart starts over. The WebAssembly.Memory stays the
   * same one (browsers allow a tab only so many), and so do the device objects embedders hold.
   */
  reboot(): void {
    this.resetDevices();
    clearRam(this.hart.ram);
    this.powerOn();
    // the host rewrote RAM behind the hart's back: a live migration under way must send it all again
    this.memory.markWritten(0, this.hart.ram.length);
    this.reboots++;
  }

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

  mtime(): bigint { return this.clock.now(); }

  /** Retired instructions as a number (exact below 2^53), read without a BigInt: the UARTs' clock. */
  private instructions(): number {
    const v = this.hart.state.view;
    return v.getUint32(INSTRET_OFFSET, true) + v.getUint32(INSTRET_OFFSET + 4, true) * 0x1_0000_0000;
  }

  private updateLines(): void {
    const now = this.mtime();
    this.hart.state.mtime = now; // the time CSR reads this until the next update
    let lines = this.plicLines;
    if (now >= this.timerDeadline) lines |= IRQ_STIP;
    if (this.clint.timerPending(now)) lines |= IRQ_MTIP;
    if (this.clint.msip) lines |= IRQ_MSIP;
    this.hart.state.mipLines = lines;
  }

  /** Loads the Linux Image, initramfs and a generated device tree into RAM and starts the hart in S-mode at the
   *  kernel, as the SBI firmware would leave it. */
  private powerOn(): void {
    const { kernel, initrd } = this.boot;
    const info = this.kernelInfo;
    const ramBytes = BigInt(this.hart.layout.ramBytes);
    const ramEnd = RAM_BASE + ramBytes;
    const kernelAddr = RAM_BASE + info.textOffset;
    const kernelEnd = kernelAddr + info.imageSize;
    const cmdline = bootCmdline(this.spec.cmdline, this.spec.deterministic);
    // The DTB's size does not depend on the addresses in it: build once to size it, then for real.
    const dtbSize = BigInt(buildDtb(this.deviceTree(cmdline, 0n, 0n)).length);
    const dtbAddr = (ramEnd - dtbSize - 0x1000n) & ~0xfffn;
    let initrdStart = 0n, initrdEnd = 0n;
    if (initrd) {
      initrdStart = (dtbAddr - BigInt(initrd.length)) & ~0xfffn;
      initrdEnd = initrdStart + BigInt(initrd.length);
    }
    // Linux needs room beyond its image for early allocations; ask for at least 16 MiB more than it all takes.
    const lowestPlaced = initrd ? initrdStart : dtbAddr;
    if (lowestPlaced < kernelEnd + 16n * 1024n * 1024n) {
      const needMiB = Number((kernelEnd - RAM_BASE + BigInt(initrd?.length ?? 0) + dtbSize + 16n * 1024n * 1024n) >> 20n) + 1;
      throw new BootError(`${this.ramMiB} MiB of RAM is too little for this kernel and initrd: give at least ${needMiB} MiB`);
    }
    this.hart.writePhys(kernelAddr, kernel);
    if (initrd) this.hart.writePhys(initrdStart, initrd);
    this.hart.writePhys(dtbAddr, buildDtb(this.deviceTree(cmdline, initrdStart, initrdEnd)));

    this.hart.ex.reset(0, kernelAddr);
    // What the SBI firmware would have set up before entering the kernel: every trap and interrupt the
    // supervisor handles is delegated to it, and the counters are readable from S-mode. Only ECALLs from S
    // (SBI calls) reach M-mode, and the emulator answers those itself.
    const s = this.hart.state;
    s.medeleg = 0xb1ffn & ~(1n << 9n) & ~(1n << 11n);
    s.mideleg = IRQ_SSIP | IRQ_STIP | IRQ_SEIP;
    s.mcounteren = 7n;
    s.scounteren = 7n; // as OpenSBI leaves it: Linux 6.1 never writes it, and its vDSO reads time from U-mode
    s.sbiInHost = 1;
    this.hart.priv = 1;
    this.hart.setReg(10, 0n);
    this.hart.setReg(11, dtbAddr);
    this.timerDeadline = NO_DEADLINE;
    this.clock.reset();
    this.exitStatus = undefined;
    this.haltReason = "";
    this.rebootPending = false;
    this.waitingForInterrupt = false;
    this.sbiConsoleInput = false;
    this.updateLines();
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
      // ttyS0 is the console, ttyS1 the agent port, whatever order Linux probes them in
      node("aliases", [["serial0", `/soc/serial@${UART_BASE.toString(16)}`], ["serial1", `/soc/serial@${AGENT_UART_BASE.toString(16)}`]]),
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
        node(`serial@${AGENT_UART_BASE.toString(16)}`, [
          ["compatible", "ns16550a"], ["reg", [...u64cells(AGENT_UART_BASE), ...u64cells(0x100n)]],
          ["clock-frequency", cells(3686400)], ["interrupts", cells(AGENT_UART_IRQ)], ["interrupt-parent", cells(PLIC_PHANDLE)],
        ]),
        ...this.virtioNodes,
      ]),
    ]);
  }

  get halted(): boolean { return this.exitStatus !== undefined; }

  private halt(status: number, reason: string): void {
    if (this.exitStatus === undefined) { this.exitStatus = status; this.haltReason = reason; }
  }

  /** Runs the guest for up to budgetMs of host time. */
  runFor(budgetMs: number): RunOutcome {
    if (this.halted) return { kind: "halted" };
    const t0 = performance.now();
    let clockAt = this.instructions(), mmioStops = 0, lookAtClock = true;
    try {
      for (;;) {
        if (this.agentQueue.pending) this.agentQueue.pump(this.agentSink);
        if (lookAtClock) this.updateLines();
        if (this.waitingForInterrupt) {
          // A WFI ends on an interrupt that is pending and enabled (whatever the global enables say). A host that
          // wakes the loop early (its longest sleep, a device with nothing for the guest) leaves the hart waiting.
          const s = this.hart.state;
          if (((s.mipSoftware | s.mipLines) & s.mie) === 0n) {
            this.busyMs += performance.now() - t0;
            return this.idleOutcome();
          }
          this.waitingForInterrupt = false;
        }
        // A UART's transmit FIFO empties at a point on the instruction clock: the slice ends there.
        const txDue = Math.min(this.uart.txDue, this.agentPort.txDue);
        const budget = txDue === Infinity ? SLICE : Math.max(1, Math.min(SLICE, txDue - this.instructions()));
        const why = this.hart.run(budget) as StopReason;
        if (txDue !== Infinity) {
          const now = this.instructions();
          this.uart.drainTx(now);
          this.agentPort.drainTx(now);
        }
        switch (why) {
          case StopReason.Mmio: this.handleMmio(); break;
          case StopReason.Ecall:
            this.handleSbi();
            if (this.rebootPending) {
              this.busyMs += performance.now() - t0;
              this.reboot();
              return { kind: "rebooted" };
            }
            break;
          case StopReason.Wfi: {
            // The hart only stops on WFI when no enabled interrupt is pending. An idle guest does not wait for a
            // transmit FIFO to empty: it empties now, and its interrupt (if enabled) wakes the guest.
            if (this.uart.txBusy || this.agentPort.txBusy) {
              this.uart.drainTx();
              this.agentPort.drainTx();
              break;
            }
            const now = this.mtime();
            if (this.deterministic) {
              // jump to the next deadline: idle time costs nothing in deterministic mode
              if (this.timerDeadline < now + 10n * BigInt(TIMEBASE_HZ)) this.clock.skipTo(this.timerDeadline);
              break;
            }
            this.uart.flush();
            this.agentPort.flush();
            this.busyMs += performance.now() - t0;
            this.waitingForInterrupt = true;
            return this.idleOutcome();
          }
          case StopReason.Fatal:
            this.halt(2, `the hart stopped: trap loop at pc 0x${this.hart.pc.toString(16)} (mcause ${this.hart.state.mcause}, mtval 0x${this.hart.state.mtval.toString(16)})`);
            break;
          case StopReason.Htif: break;
          case StopReason.Slice: break;
        }
        if (this.halted) break;
        // The host clock (the guest's time, its timer lines, this call's budget) is looked at after every stop, not
        // only full slices: a guest polling a device stops on each access. After MMIO stops, though, only every
        // CLOCK_EVERY_STOPS of them or CLOCK_EVERY_INSTRUCTIONS: a console line takes about ten, and reading the
        // clock costs as much as the rest of such a stop. Device events change the lines at once without it.
        lookAtClock = why !== StopReason.Mmio || ++mmioStops >= CLOCK_EVERY_STOPS
          || this.instructions() - clockAt >= CLOCK_EVERY_INSTRUCTIONS;
        if (!lookAtClock) continue;
        mmioStops = 0;
        clockAt = this.instructions();
        if (performance.now() - t0 >= budgetMs) break;
      }
    } finally {
      this.uart.flush();
      this.agentPort.flush();
    }
    this.busyMs += performance.now() - t0;
    return this.halted ? { kind: "halted" } : { kind: "slice" };
  }

  /** The guest waits for an interrupt: the host may sleep until its timer's deadline (or a device's event). */
  private idleOutcome(): RunOutcome {
    const now = this.mtime();
    const wakeAtMs = this.timerDeadline > now + 3600n * BigInt(TIMEBASE_HZ)
      ? Infinity : performance.now() + MachineClock.ticksToMs(this.timerDeadline - now);
    return { kind: "idle", wakeAtMs };
  }

  /** Answers the access the hart stopped on. The exchange words are read and written as 32-bit halves: a BigInt
   *  per stop costs more than the rest of the stop's work on the host. */
  private handleMmio(): void {
    const h = this.hart, v = h.state.view;
    const addr = v.getUint32(MMIO_ADDR, true) + v.getUint32(MMIO_ADDR + 4, true) * 0x1_0000_0000;
    const size = v.getUint32(MMIO_SIZE, true);
    const store = v.getUint32(MMIO_IS_STORE, true) !== 0;
    const out = this.mmioValue;
    if (!this.bus.access(addr, size, store, v.getUint32(MMIO_DATA, true), v.getUint32(MMIO_DATA + 4, true), out)) {
      h.mmioFail();
      return;
    }
    if (store) out.lo = out.hi = 0;
    if (out.hi === 0 && out.lo < SMALL_VALUES.length) h.mmioComplete(SMALL_VALUES[out.lo]);
    else h.mmioComplete((BigInt(out.hi) << 32n) | BigInt(out.lo));
  }
  private readonly mmioValue: MmioValue = { lo: 0, hi: 0 };

  private readonly sbiHost: SbiHost = {
    setTimer: (deadline) => { this.timerDeadline = deadline; this.updateLines(); },
    putchar: (byte) => this.uart.write(0, 1, byte),
    getchar: () => {
      this.sbiConsoleInput = true;
      return this.uart.rxPending > 0 ? this.uart.read(0, 1) : -1;
    },
    fenceI: () => this.hart.fenceI(),
    sfenceVma: () => this.hart.ex.flushTlb(),
    sendSoftwareInterrupt: () => { /* one hart: nothing to signal */ },
    clearSoftwareInterrupt: () => {},
    reset: (type, reason) => {
      if (type === 0) this.halt(reason === 0 ? 0 : 1, reason === 0 ? "powered off" : "the guest reported a system failure");
      else this.rebootPending = true; // after the call returns: its result registers belong to the old boot
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

  private readonly agentPort: Uart16550;
  /** host lines for the guest's agent, held until its port is open and reading (as console input is) */
  private readonly agentQueue = new ConsoleInput();
  private readonly agentSink: ConsoleInputSink = {
    uart: undefined as unknown as Uart16550, // set in the constructor, once the port exists
    sbiConsoleInput: false,
    sendInput: (bytes) => { this.agentPort.input(bytes); this.updateLines(); },
  };
  private agentText = "";
  private readonly agentDecoder = new TextDecoder();
  /** Called with each line the guest's agent writes on the agent port (without the line end). */
  onAgentLine: ((line: string) => void) | undefined;

  /** Sends one line to the guest's agent (see guest/rootfs/init), e.g. `identity hostname=web2 mac=...`. */
  agentSend(line: string): void {
    if (/[\r\n]/.test(line)) throw new Error("an agent request is one line");
    this.agentQueue.push(new TextEncoder().encode(line + "\n"));
  }

  private agentOutput(bytes: Uint8Array): void {
    this.agentText += this.agentDecoder.decode(bytes, { stream: true });
    let nl: number;
    while ((nl = this.agentText.indexOf("\n")) >= 0) {
      const line = this.agentText.slice(0, nl).replace(/\r$/, "");
      this.agentText = this.agentText.slice(nl + 1);
      this.onAgentLine?.(line);
    }
    if (this.agentText.length > 4096) this.agentText = this.agentText.slice(-4096); // a guest that never ends a line
  }

  /** What a snapshot needs of this machine, in restore order (snapshot/machine-state.ts). */
  private parts(): MachineParts {
    return {
      hart: this.hart,
      ram: this.hart.ram,
      clock: this.clock,
      devices: [
        { name: "plic", device: this.plic },
        { name: "clint", device: this.clint },
        { name: "uart", device: this.uart },
        { name: "agent-uart", device: this.agentPort },
        ...this.virtio.map((v) => ({ name: `virtio-${v.slot.kind}`, device: v.transport })),
      ],
      disks: this.disks.map((blk) => ({ backend: blk.backend, blk })),
      firmware: {
        saveState: () => ({ timerDeadline: this.timerDeadline }),
        restoreState: (st) => { this.timerDeadline = new StateReader(st, "firmware").big("timerDeadline"); },
      },
      updateLines: () => this.updateLines(),
    };
  }

  /** The whole machine's state (see snapshot/machine-state.ts). Waits for the disks' requests in flight; the
   *  embedder must not run the machine until it resolves. withoutRam: RAM is left out (a live migration has sent
   *  it page by page); withoutDisks: the disks' contents are left out (a fork shares them: layered-disk.ts). */
  async saveState(opts: { withoutRam?: boolean; withoutDisks?: boolean } = {}): Promise<StateObject> {
    if (this.halted) throw new Error("a halted machine has no state worth saving");
    const parts = this.parts();
    await quiesce(parts);
    return saveMachine(parts, opts);
  }

  /** A write log over this machine's RAM (live migration). */
  dirtyLog(): DirtyLog { return new DirtyLog([this.hart], this.memory); }

  /** A board of `spec` with all-zero RAM that has not booted: the target of a live migration writes RAM pages into
   *  it as they arrive, then restoreState(state, { ramInPlace: true }) puts the rest in; a restore fills it whole. */
  static blank(module: WebAssembly.Module, spec: MachineSpec, attachments: MachineAttachments, options: MachineOptions = {}): Machine {
    // (a machine about to be restored is past its boot: its JIT starts at once unless asked otherwise)
    return new Machine(module, validateSpec(spec), attachments, { ...options, jitStartAfter: options.jitStartAfter ?? 0 });
  }

  /** Puts a saved state into a blank() machine (never into one that has run: its RAM must be all zeros).
   *  ramInPlace: the state has no RAM, it was written into this machine already (a live migration). */
  async restoreState(state: StateValue, opts: { skipDisks?: boolean; ramInPlace?: boolean } = {}): Promise<void> {
    await restoreMachine({ ...this.parts(), ramZeroed: true }, state, opts);
  }

  /** Builds the board a description asks for and puts a saved state into it instead of booting. Throws
   *  SnapshotError when the state does not fit the description (nothing else is touched but the new machine and,
   *  last, its disks). */
  static async restore(module: WebAssembly.Module, spec: MachineSpec, attachments: MachineAttachments, state: StateValue,
    opts: { skipDisks?: boolean } = {}, options: MachineOptions = {}): Promise<Machine> {
    const m = Machine.blank(module, spec, attachments, options);
    await m.restoreState(state, opts);
    return m;
  }


}

const CPU_INTC_PHANDLE = 1;
const PLIC_PHANDLE = 2;

/** The attachments a description needs: a backend of the right size for each disk, no more host parts than
 *  devices. */
function checkAttachments(spec: MachineSpec, att: MachineAttachments): void {
  const disks = att.disks ?? [];
  if (disks.length !== spec.disks.length) {
    throw new MachineSpecError("disks", `lists ${spec.disks.length} disks but ${disks.length} disk backends were attached`);
  }
  spec.disks.forEach((d, i) => {
    const backend = disks[i];
    if (backend.size !== d.sizeBytes) {
      throw new MachineSpecError(`disks[${i}].sizeBytes`, `is ${d.sizeBytes} but the attached disk has ${backend.size} bytes`);
    }
    if (d.readOnly === false && backend.readOnly) {
      throw new MachineSpecError(`disks[${i}].readOnly`, "is false but the attached disk is read-only");
    }
    const over = baseBacked(backend)?.baseId;
    if (over !== d.base) {
      throw new MachineSpecError(`disks[${i}].base`, `is ${d.base ?? "none (zeros)"} but the attached disk is over ${over ?? "zeros"}`);
    }
  });
  if ((att.nics?.length ?? 0) > spec.nics.length) {
    throw new MachineSpecError("nics", `lists ${spec.nics.length} cards but ${att.nics!.length} were attached`);
  }
}

/** Clears guest RAM, writing only the 4 KiB pages that are not zero already: pages the guest never touched stay
 *  unbacked on the host, so a reboot does not make the whole RAM resident. */
function clearRam(ram: Uint8Array): void {
  for (const p of nonZeroPages(ram)) ram.fill(0, p * PAGE_SIZE, (p + 1) * PAGE_SIZE);
}

/** The command line the kernel boots with: `cmdline`, plus the host's time as `tabvisor.time=` (seconds since
 *  1970, UTC) for the guest's init to set its clock from, unless the line has one already or the machine is
 *  deterministic. The board has no RTC: without it a guest's clock counts from 1970 (its file times, and file
 *  system checks that take early times for something else). */
export function bootCmdline(cmdline: string, deterministic: boolean, nowMs = Date.now()): string {
  if (deterministic || /(^|\s)tabvisor\.time=/.test(cmdline)) return cmdline;
  return `${cmdline} tabvisor.time=${Math.floor(nowMs / 1000)}`.trim();
}
