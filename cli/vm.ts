// `npm run vm` (or `npx tabvisor vm`, cli/tabvisor.mjs): a Tabvisor VM on the terminal.
//   npm run vm                      boots the default guest image (public/images) with its console here
//   npm run vm -- --elf FILE        runs a bare-metal ELF with an HTIF tohost device (riscv-tests, benchmarks)
//   npm run vm -- --image debian    boots the Debian system disk (public/images/debian, npm run images:debian)
// Options: --mem MB, --kernel FILE, --initrd FILE, --append "ARGS", --disk FILE, --hostname NAME, --timeout-ms N,
// --deterministic (the guest clock follows retired instructions, so runs repeat exactly), --snapshot FILE (where
// Ctrl-A s saves; default ./tabvisor.snap), --restore FILE (start from a snapshot instead of booting).
// With a terminal on stdin it is put in raw mode. Ctrl-A x quits, Ctrl-A s saves a snapshot (the VM runs on),
// Ctrl-A Ctrl-A types a Ctrl-A; the same bytes work when stdin is a pipe, whose other bytes are typed into the
// guest console, so a script can drive it. Either way the bytes wait until the
// guest's serial port is open and reading (NodeVm.send), so nothing typed or piped in during boot is lost. The
// exit status is the guest's (0 after poweroff), 3 on --timeout-ms, 2 for bad input, with a one-line message.
// The guest (or --elf program) is held while stdout is not drained (a pipe its reader has paused), so its output
// never piles up here; a boot that has put nothing on the console after a few seconds is told on stderr.

import { readFileSync, writeFileSync, renameSync } from "node:fs";
import { parseArgs } from "node:util";
import { runBareElf } from "../emulator-core/src/bare.ts";
import { Hart } from "../emulator-core/src/hart.ts";
import { DEFAULT_JIT_THRESHOLD } from "../emulator-core/src/jit/tier.ts";
import { NodeVm, VmConfigError, DEFAULT_IMAGES } from "../emulator-core/src/node/vm.ts";
import { SnapshotError } from "../emulator-core/src/snapshot/state-value.ts";
import { openTemplate } from "./template-cache.ts";
import { DEBIAN_IMAGE_DIR, DEBIAN_BUILD_HINT, openChunkedImage, readChunkedManifest } from "../emulator-core/src/node/chunked-image.ts";

/** The images --image names: the default busybox initramfs, or the Debian system disk (chunked, read on demand). */
const IMAGES = ["default", "debian"] as const;

function fail(message: string, code = 2): never {
  process.stderr.write(`vm: ${message}\n`);
  process.exit(code);
}

/** A whole decimal number above zero (no 0x, exponents, fractions or blanks: what a typo makes must not pass as
 *  some other number); a bad value ends the command with one line. */
function positive(name: string, v: string | undefined, fallback: number, unit: string): number {
  if (v === undefined) return fallback;
  if (v.trim() === "") fail(`--${name} needs a value: a whole number of ${unit}`);
  const n = /^[0-9]+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n <= 0) fail(`--${name} must be a whole number of ${unit} above 0, not ${JSON.stringify(v)}`);
  return n;
}

/** Writes console output to stdout; false when stdout is behind (a pipe its reader is not emptying): the caller
 *  holds the guest until whenStdoutDrained() resolves, so output never piles up in this process. */
function toStdout(bytes: Uint8Array | string): boolean {
  if (bytes.length) consoleSeen = true;
  return process.stdout.write(bytes);
}
/** something has been written to the console */
let consoleSeen = false;
/** How long a booting VM may stay silent before the command says so (a corrupt kernel, or a command line without
 *  console=ttyS0, spins without a word): the default image prints within a fraction of a second. */
const SILENT_BOOT_MS = 5000;
function whenStdoutDrained(): Promise<void> {
  if (!process.stdout.writableNeedDrain) return Promise.resolve();
  return new Promise((resolve) => process.stdout.once("drain", resolve));
}

/** Exits once what was written to stdout has left the process (process.exit would drop output a pipe has not
 *  taken yet). */
function exitAfterOutput(status: number): void {
  const exit = () => process.exit(status);
  if (process.stdout.writableLength === 0) exit();
  process.stdout.once("drain", exit);
  process.stdout.once("error", exit);
}

/** The JIT (on unless --no-jit), --jit-threshold; `report`: --jit given, which also prints the JIT's counters at
 *  the end */
interface JitChoice { jit: boolean; jitThreshold?: number; report?: boolean }

async function runElf(path: string, timeoutMs: number, ramMiB: number, jit: JitChoice): Promise<void> {
  // runBareElf makes its hart itself: it takes the JIT from this default
  if (jit.jit) Hart.jitByDefault = { threshold: jit.jitThreshold };
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    fail(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const r = await runBareElf(bytes, {
    timeoutMs, ramMiB,
    // HTIF console characters are bytes (Latin-1), written as they are
    onConsole: (s) => toStdout(Buffer.from(s, "latin1")), whenDrained: whenStdoutDrained,
  });
  const mips = r.hostMs > 0 ? Number(r.instructions) / r.hostMs / 1000 : 0;
  const stats = `${r.instructions} instructions in ${r.hostMs.toFixed(0)} ms (${mips.toFixed(1)} MIPS)`;
  switch (r.status) {
    case "pass": process.stderr.write(`vm: pass: ${stats}\n`); return;
    case "fail": process.stderr.write(`vm: ${path}: failed test case ${r.exitCode} (${stats})\n`); return exitAfterOutput(1);
    case "timeout": fail(`${path}: ${r.message}`, 3);
    default: process.stderr.write(`vm: ${path}: ${r.message}\n`); return exitAfterOutput(2);
  }
}

/** Saves a snapshot of the running VM to path (through a temporary file, so a failed save leaves an earlier
 *  snapshot there whole). */
async function saveSnapshot(vm: NodeVm, path: string): Promise<void> {
  try {
    const file = await vm.snapshot();
    const tmp = `${path}.tmp-${process.pid}`;
    writeFileSync(tmp, file);
    renameSync(tmp, path);
    process.stderr.write(`\r\nsnapshot saved: ${path} (${file.length} bytes)\r\n`);
  } catch (e) {
    process.stderr.write(`\r\nvm: the snapshot was not saved: ${(e as Error).message}\r\n`);
  }
}

/** The default VM (no options that change the board or the images) starts from public/images/template-vm.snap
 *  when it is there and fits (a snapshot of this image booted to an idle shell; npm run template): the prompt comes
 *  in a fraction of a boot. A missing or stale template is no error: the VM boots instead. */
async function fromTemplate(opts: LinuxOptions): Promise<NodeVm | undefined> {
  // the template's state, decoded once and kept for the next start (template-cache.ts); it is read while
  // NodeVm.fromTemplate builds the board
  const template = openTemplate(DEFAULT_IMAGES + "template-vm.snap");
  if (!template) return undefined;
  try {
    return await NodeVm.fromTemplate(template, {
      ramMiB: opts.mem, hostname: opts.hostname, keepOutput: false, onConsole: toStdout, whenConsoleDrained: whenStdoutDrained,
      jit: opts.jit, jitThreshold: opts.jitThreshold,
    });
  } catch (e) {
    if (!(e instanceof SnapshotError)) throw e;
    process.stderr.write(`vm: booting (the template does not fit: ${e.message}; npm run template remakes it)\n`);
    return undefined;
  }
}

/** The Debian image: the project's kernel, no initramfs, the chunked disk as /dev/vda (a copy-on-write overlay in
 *  memory: what the guest writes is gone when the command ends). */
function bootDebian(opts: LinuxOptions): NodeVm {
  if (opts.disk !== undefined || opts.initrd !== undefined) fail("--image debian brings its own disk and no initrd: leave out --disk and --initrd");
  let manifest;
  try {
    manifest = readChunkedManifest(DEBIAN_IMAGE_DIR);
  } catch (e) {
    fail(`the Debian image in ${DEBIAN_IMAGE_DIR} is damaged (${(e as Error).message}): ${DEBIAN_BUILD_HINT}`);
  }
  if (!manifest) fail(`the Debian image is not built (no ${DEBIAN_IMAGE_DIR}manifest.json): ${DEBIAN_BUILD_HINT}`);
  const { disk } = openChunkedImage(DEBIAN_IMAGE_DIR);
  const cmdline = typeof manifest.cmdline === "string" ? manifest.cmdline : "console=ttyS0 root=/dev/vda rw";
  try {
    return new NodeVm({
      ramMiB: opts.mem, kernel: opts.kernel ?? DEFAULT_IMAGES + "Image",
      // (the machine adds tabvisor.time, the host's clock, at every boot: machine.ts bootCmdline)
      append: opts.append ?? `${cmdline} hostname=${opts.hostname ?? "debian"}`,
      diskBackend: disk, keepOutput: false, deterministic: opts.deterministic,
      onConsole: toStdout, whenConsoleDrained: whenStdoutDrained, jit: opts.jit, jitThreshold: opts.jitThreshold,
    });
  } catch (e) {
    if (e instanceof VmConfigError || e instanceof RangeError) fail(e.message);
    throw e;
  }
}

function bootVm(opts: LinuxOptions): NodeVm {
  if (opts.image === "debian") return bootDebian(opts);
  try {
    return new NodeVm({
      ramMiB: opts.mem, kernel: opts.kernel, initrd: opts.initrd, append: opts.append, disk: opts.disk,
      hostname: opts.hostname, keepOutput: false, deterministic: opts.deterministic,
      onConsole: toStdout, whenConsoleDrained: whenStdoutDrained, jit: opts.jit, jitThreshold: opts.jitThreshold,
    });
  } catch (e) {
    if (e instanceof VmConfigError || e instanceof RangeError) fail(e.message);
    throw e;
  }
}

interface LinuxOptions extends Partial<JitChoice> {
  /** nothing asked for that a template cannot give (kernel, initrd, command line, disk, clock mode, RAM size) */
  plain?: boolean;
  mem: number; deterministic?: boolean; kernel?: string; initrd?: string; append?: string; disk?: string; hostname?: string;
  timeoutMs?: number; snapshot?: string; restore?: string; image?: (typeof IMAGES)[number];
}

async function runLinux(opts: LinuxOptions): Promise<void> {
  const snapshotPath = opts.snapshot ?? "tabvisor.snap";
  let vm: NodeVm;
  if (opts.restore !== undefined) {
    let file: Uint8Array;
    try {
      file = readFileSync(opts.restore);
    } catch (e) {
      fail(`cannot read the snapshot ${opts.restore}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`);
    }
    try {
      vm = await NodeVm.restore(file, {
        disk: opts.disk, keepOutput: false, onConsole: toStdout, whenConsoleDrained: whenStdoutDrained, jit: opts.jit, jitThreshold: opts.jitThreshold,
      });
    } catch (e) {
      if (e instanceof SnapshotError || e instanceof VmConfigError || e instanceof RangeError) fail(`${opts.restore}: ${e.message}`);
      throw e;
    }
    process.stderr.write(`vm: restored ${opts.restore}\n`);
  } else {
    const fromTemplateVm = opts.plain ? await fromTemplate(opts) : undefined;
    vm = fromTemplateVm ?? bootVm(opts);
    if (!fromTemplateVm) {
      setTimeout(() => {
        if (consoleSeen) return;
        process.stderr.write(`\r\nvm: nothing has reached the console after ${SILENT_BOOT_MS / 1000} s of booting: is the kernel a ` +
          `working RISC-V Linux Image, with console=ttyS0 on its command line? (the VM runs on; Ctrl-A x quits)\r\n`);
      }, SILENT_BOOT_MS).unref();
    }
  }

  const stdin = process.stdin;

  const tty = stdin.isTTY;
  const quit = () => { if (tty) stdin.setRawMode(false); process.stderr.write("\r\nvm: quit\r\n"); process.exit(0); };
  // Ctrl-A is the escape key, as in QEMU's -nographic console: what follows it is a command, not input.
  let escape = false;
  const onInput = (chunk: Buffer) => {
    const out: number[] = [];
    for (const b of chunk) {
      if (escape) {
        escape = false;
        if (b === 0x78 /* x */) quit();
        else if (b === 0x73 /* s */) { if (out.length) vm.send(Uint8Array.from(out.splice(0))); void saveSnapshot(vm, snapshotPath); }
        else if (b === 0x01) out.push(0x01);
        continue;
      }
      if (b === 0x01) { escape = true; continue; }
      out.push(b);
    }
    if (out.length) vm.send(Uint8Array.from(out));
  };
  if (tty) {
    stdin.setRawMode(true);
    process.stderr.write("vm: console attached; Ctrl-A x quits, Ctrl-A s saves a snapshot\r\n");
  }
  stdin.on("data", onInput);
  stdin.on("error", () => {});
  stdin.resume();
  if (opts.timeoutMs !== undefined) {
    setTimeout(() => { process.stderr.write(`\nvm: timed out after ${opts.timeoutMs} ms\n`); process.exit(3); }, opts.timeoutMs).unref();
  }
  const status = await vm.run();
  if (tty) stdin.setRawMode(false);
  const reason = vm.machine.haltReason;
  if (status !== 0) process.stderr.write(`vm: ${reason}\n`);
  const jit = vm.machine.hart.jit;
  if (jit && opts.report) {
    const st = jit.stats;
    const held = jit.resident;
    process.stderr.write(`vm: JIT: ${st.compiled} regions compiled (${st.instructions} instructions), ${st.notCompiled} starts not compiled, ` +
      `${st.reinstalled} reinstalled, ${st.evicted + st.evictedForCode} evicted, ${held.regions} held (${(held.codeBytes / 1048576).toFixed(1)} MiB of ` +
      `WebAssembly), ${st.compileMs.toFixed(0)} ms compiling of ${vm.machine.busyMs.toFixed(0)} ms running (and ${st.offThreadMs.toFixed(0)} ms on the compiler thread); ` +
      `${jit.calls.blocks} block entries retired ${jit.calls.instructions} of ${vm.machine.hart.instret} instructions, ${jit.invalidations} invalidations\n`);
  }
  exitAfterOutput(status);
}

async function main(): Promise<void> {
  // stdout's reader went away (`npm run vm | head`): no one reads the console any more, so end quietly, with the
  // status of a writer a closed pipe stops (128 + SIGPIPE), instead of a stack trace
  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") process.exit(141);
    fail(`cannot write the console to stdout: ${e.message}`, 1);
  });
  let args;
  try {
    args = parseArgs({
      options: {
        elf: { type: "string" }, kernel: { type: "string" }, initrd: { type: "string" }, append: { type: "string" },
        disk: { type: "string" }, hostname: { type: "string" }, mem: { type: "string" },
        deterministic: { type: "boolean" }, snapshot: { type: "string" }, restore: { type: "string" },
        "timeout-ms": { type: "string" }, image: { type: "string" }, help: { type: "boolean", short: "h" },
        jit: { type: "boolean" }, "no-jit": { type: "boolean" }, "jit-threshold": { type: "string" },
      },
      strict: true,
    }).values;
  } catch (e) {
    fail((e as Error).message);
  }
  if (args.help) {
    process.stdout.write([
      "usage: npm run vm -- [--mem MB] [--deterministic] [--kernel Image] [--initrd FILE] [--append ARGS] [--disk FILE] [--hostname NAME] [--timeout-ms N] [--snapshot FILE]",
      "       npm run vm -- --image debian [--mem MB] [--hostname NAME] [--append ARGS] [--timeout-ms N]   (the Debian disk: npm run images:debian)",
      "       npm run vm -- --restore FILE [--disk FILE] [--snapshot FILE] [--timeout-ms N]",
      "       console: Ctrl-A x quits, Ctrl-A s saves a snapshot to --snapshot FILE (default ./tabvisor.snap)",
      "       npm run vm -- --elf FILE [--timeout-ms N] [--mem MB]",
      "       hot guest code is compiled to WebAssembly (the JIT) unless --no-jit: the interpreter alone (for debugging and comparison)",
      "       --jit-threshold N: executions of a block before it is compiled (1 compiles all code); --jit also prints the JIT's counters at the end",
      "       (npx tabvisor vm takes the same options)",
      "",
    ].join("\n"));
    return;
  }
  const timeout = args["timeout-ms"] !== undefined ? positive("timeout-ms", args["timeout-ms"], 0, "milliseconds") : undefined;
  if (args.jit && args["no-jit"]) fail("--jit and --no-jit contradict each other: give one");
  if (args["jit-threshold"] !== undefined && args["no-jit"]) fail("--jit-threshold goes with the JIT, not with --no-jit");
  const on = !args["no-jit"];
  const jit: JitChoice = { jit: on, jitThreshold: on ? positive("jit-threshold", args["jit-threshold"], DEFAULT_JIT_THRESHOLD, "executions") : undefined, report: args.jit === true };
  if (args.elf) return runElf(args.elf, timeout ?? 60_000, positive("mem", args.mem, 64, "MiB"), jit);
  const image = args.image ?? "default";
  if (!(IMAGES as readonly string[]).includes(image)) fail(`--image must be one of ${IMAGES.join(", ")}, not ${JSON.stringify(image)}`);
  if (image !== "default" && args.restore !== undefined) fail("--restore starts from the snapshot's own state: leave out --image");
  // Debian runs PostgreSQL, nginx and sshd: 512 MiB by default
  const mem = positive("mem", args.mem, image === "debian" ? 512 : 256, "MiB");
  const plain = image === "default" && !args.kernel && !args.initrd && !args.append && !args.disk && !args.deterministic && args.mem === undefined;
  return runLinux({ image: image as LinuxOptions["image"],
    mem, deterministic: args.deterministic, kernel: args.kernel, initrd: args.initrd, append: args.append, disk: args.disk,
    hostname: args.hostname, timeoutMs: timeout, snapshot: args.snapshot, restore: args.restore, plain, ...jit,
  });
}

main().catch((e) => fail(e instanceof Error ? e.message : String(e)));
