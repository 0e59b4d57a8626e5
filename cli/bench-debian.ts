// `npm run bench:debian`: the Debian system disk (public/images/debian, npm run images:debian) on Tabvisor, and on
// QEMU (TCG) with the same kernel and disk where qemu-system-riscv64 is installed. Host wall times:
//   - boot to the root prompt, cold (every chunk read from the published directory, checked and inflated) and with
//     the chunks cached (the compressed chunks already in memory, as a page's Cache Storage would hold them: still
//     checked and inflated); the bytes the first boot fetched, at the prompt and once the services are up
//   - python3 -c "print(sum(i*i for i in range(10**6)))"
//   - nginx requests per second from another VM on the lab network (python3 http.client, one keep-alive
//     connection, 10 s)
// Skipped (exit 0, saying why) when the image is not built. A benchmark, not a test: nothing here fails on speed.
//
//   npm run bench:debian [-- --no-qemu] [--rps-seconds N]

import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync, ftruncateSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { gunzipSync } from "node:zlib";
import { NodeVm, DEFAULT_IMAGES } from "../emulator-core/src/node/vm.ts";
import { DEBIAN_IMAGE_DIR, DEBIAN_BUILD_HINT, DirectoryChunkSource, readChunkedManifest } from "../emulator-core/src/node/chunked-image.ts";
import { ChunkedDisk, chunkFileName, type ChunkSource, type ChunkedImageManifest } from "../emulator-core/src/machine/virtio/chunked-disk.ts";
import { VirtualSwitch, attachNic } from "../emulator-core/src/net/switch.ts";
import { Gateway } from "../emulator-core/src/net/gateway.ts";
import { findOpensbi, findQemu } from "./bench/linux-guest.ts";

const { values: args } = parseArgs({ options: { "no-qemu": { type: "boolean" }, "rps-seconds": { type: "string" } } });
const RPS_SECONDS = Number(args["rps-seconds"] ?? 10);
const RAM_MIB = 512;
const PY_SUM = `python3 -c "print(sum(i*i for i in range(10**6)))"`;
const PY_SUM_RESULT = "333332833333500000";
const WAIT_SERVICES = "i=0; while [ ! -e /run/tabvisor/services-ready ] && [ $i -lt 600 ]; do sleep 1; i=$((i+1)); done; ls /run/tabvisor/services-ready";
const rpsScript = (host: string, seconds: number) =>
  `python3 -c "import http.client,time
c=http.client.HTTPConnection('${host}',80,timeout=30); n=0; t=time.time()
while time.time()-t<${seconds}:
  c.request('GET','/'); r=c.getresponse(); r.read(); n+=1
print('rps=%.1f' % (n/(time.time()-t)))"`;

const log = (s: string) => process.stdout.write(s + "\n");
const sec = (ms: number) => (ms / 1000).toFixed(1) + " s";
const mb = (n: number) => (n / 1e6).toFixed(1) + " MB";

const manifest = readChunkedManifest(DEBIAN_IMAGE_DIR);
if (!manifest) {
  log(`bench:debian: skipped: the Debian image is not built (${DEBIAN_IMAGE_DIR}): ${DEBIAN_BUILD_HINT}`);
  process.exit(0);
}
const cmdline = String(manifest.cmdline ?? "console=ttyS0 root=/dev/vda rw");

/** Remembers every compressed chunk fetched, for the "chunks cached" boot. */
class RecordingSource implements ChunkSource {
  readonly seen = new Map<string, Uint8Array>();
  constructor(private readonly inner: ChunkSource) {}
  async fetch(name: string, index: number): Promise<Uint8Array> {
    const b = await this.inner.fetch(name, index);
    this.seen.set(name, b);
    return b;
  }
}
/** Serves chunks from memory where it has them (the page's cache), else from the directory. */
class CachedSource implements ChunkSource {
  constructor(private readonly cache: Map<string, Uint8Array>, private readonly inner: ChunkSource) {}
  fetch(name: string, index: number): Promise<Uint8Array> {
    const b = this.cache.get(name);
    return b ? Promise.resolve(b) : this.inner.fetch(name, index);
  }
}

function tabvisorVm(hostname: string, source: ChunkSource, extra = "", nics = 0, macLast = 0x30) {
  const disk = new ChunkedDisk(manifest, source);
  const vm = new NodeVm({
    ramMiB: RAM_MIB, kernel: DEFAULT_IMAGES + "Image", diskBackend: disk, keepOutput: true, nics,
    macs: nics ? [[0x52, 0x54, 0x00, 0x12, 0x36, macLast]] : undefined,
    append: `${cmdline} hostname=${hostname} ${extra}`.trim(), // (the machine adds tabvisor.time at boot)
  });
  return { vm, disk };
}

async function stopVm(vm: NodeVm): Promise<void> {
  vm.send("poweroff -f\n");
  const off = await Promise.race([vm.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5000))]);
  if (!off) vm.stop();
}

interface Figures { bootCold?: number; bootCached?: number; fetchedPrompt?: number; fetchedServices?: number; servicesMs?: number; python?: number; rps?: number }

async function benchTabvisor(): Promise<Figures> {
  const f: Figures = {};
  // cold boot: every chunk from the directory
  const rec = new RecordingSource(new DirectoryChunkSource(DEBIAN_IMAGE_DIR));
  let t0 = performance.now();
  const a = tabvisorVm("deb1", rec);
  a.vm.start();
  await a.vm.waitFor("root@deb1:~# ", 600_000, 0);
  f.bootCold = performance.now() - t0;
  f.fetchedPrompt = a.disk.stats.bytesFetched;
  log(`tabvisor: boot to root prompt (cold) ${sec(f.bootCold)}, fetched ${mb(f.fetchedPrompt)} in ${a.disk.stats.chunksFetched} chunks`);
  await a.vm.command(WAIT_SERVICES, 660_000);
  f.servicesMs = performance.now() - t0;
  f.fetchedServices = a.disk.stats.bytesFetched;
  log(`tabvisor: services up after ${sec(f.servicesMs)}, fetched ${mb(f.fetchedServices)} by then`);
  t0 = performance.now();
  const out = await a.vm.command(PY_SUM, 600_000);
  f.python = performance.now() - t0;
  if (!out.includes(PY_SUM_RESULT)) log(`tabvisor: python3 printed something else: ${out.trim()}`);
  log(`tabvisor: ${PY_SUM}: ${sec(f.python)}`);
  await stopVm(a.vm);

  // chunks cached: the compressed chunks the first boot fetched, from memory
  t0 = performance.now();
  const b = tabvisorVm("deb1", new CachedSource(rec.seen, new DirectoryChunkSource(DEBIAN_IMAGE_DIR)));
  b.vm.start();
  await b.vm.waitFor("root@deb1:~# ", 600_000, 0);
  f.bootCached = performance.now() - t0;
  log(`tabvisor: boot to root prompt (chunks cached) ${sec(f.bootCached)}`);
  await stopVm(b.vm);

  // nginx requests/s over the lab network
  const sw = new VirtualSwitch({ name: "bench" });
  new Gateway(sw, { ip: "10.0.11.1", prefix: 24, domain: "lab" });
  const cache = new CachedSource(rec.seen, new DirectoryChunkSource(DEBIAN_IMAGE_DIR));
  const web = tabvisorVm("web1", cache, "tabvisor.dhcp=wait", 1, 0x31);
  const cli = tabvisorVm("cli1", cache, "tabvisor.dhcp=wait", 1, 0x32);
  attachNic(sw, web.vm.nics[0], { name: "web1", wake: () => web.vm.wake() });
  attachNic(sw, cli.vm.nics[0], { name: "cli1", wake: () => cli.vm.wake() });
  web.vm.start(); cli.vm.start();
  await Promise.all([web.vm.waitFor("root@web1:~# ", 600_000, 0), cli.vm.waitFor("root@cli1:~# ", 600_000, 0)]);
  await Promise.all([web.vm.command(WAIT_SERVICES, 660_000), cli.vm.command(WAIT_SERVICES, 660_000)]);
  const rps = await cli.vm.command(rpsScript("web1", RPS_SECONDS), 600_000);
  f.rps = Number(/rps=([\d.]+)/.exec(rps)?.[1]);
  log(`tabvisor: nginx from another VM: ${f.rps} requests/s (${rps.trim().split("\n").pop()})`);
  await Promise.all([stopVm(web.vm), stopVm(cli.vm)]);
  return f;
}

/** The published chunks put back together as a sparse raw image, for QEMU. */
function rawImage(m: ChunkedImageManifest, file: string): void {
  const fd = openSync(file, "w");
  ftruncateSync(fd, m.size);
  m.chunks.forEach((c, i) => {
    if (!c) return;
    const data = gunzipSync(readFileSync(join(DEBIAN_IMAGE_DIR, "chunks", chunkFileName(c[1]))));
    writeSync(fd, data, 0, data.length, i * m.chunkSize);
  });
  closeSync(fd);
}

class QemuVm {
  out = "";
  private child: ChildProcess;
  private seq = 0;
  constructor(qemu: string, image: string, append: string, net: string[]) {
    this.child = spawn(qemu, ["-M", "virt", "-m", String(RAM_MIB), "-nographic", "-bios", findOpensbi(),
      "-kernel", DEFAULT_IMAGES + "Image", "-append", append,
      "-drive", `file=${image},if=none,format=raw,id=d0,snapshot=on`, "-device", "virtio-blk-device,drive=d0",
      "-device", "virtio-rng-device", ...net], { stdio: ["pipe", "pipe", "pipe"] });
    this.child.stdout!.on("data", (b: Buffer) => { this.out += b.toString("latin1"); });
    this.child.stderr!.on("data", (b: Buffer) => { this.out += b.toString("latin1"); });
  }
  async waitFor(s: string | RegExp, from: number, ms: number): Promise<string> {
    const end = Date.now() + ms;
    for (;;) {
      const rest = this.out.slice(from);
      const m = typeof s === "string" ? (rest.includes(s) ? [s] : null) : s.exec(rest);
      if (m) return rest;
      if (Date.now() > end) throw new Error(`qemu: timed out waiting for ${s}; last output:\n${this.out.slice(-400)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  async command(cmd: string, ms: number): Promise<string> {
    const n = ++this.seq, from = this.out.length;
    this.child.stdin!.write(`${cmd}; echo "@@Q""END${n}@@"\n`);
    const text = await this.waitFor(`@@QEND${n}@@\r\n`, from, ms);
    return text;
  }
  kill(): void { this.child.kill("SIGKILL"); }
}

async function benchQemu(qemu: string): Promise<Figures> {
  const f: Figures = {};
  const dir = mkdtempSync(join(tmpdir(), "bench-debian-"));
  try {
    const image = join(dir, "debian.raw");
    rawImage(manifest!, image);
    const port = 20000 + Math.floor(Math.random() * 20000);
    const net = (mode: string, mac: string) => ["-netdev", `socket,id=n0,${mode}=127.0.0.1:${port}`, "-device", `virtio-net-device,netdev=n0,mac=${mac}`];
    let t0 = performance.now();
    const web = new QemuVm(qemu, image, `${cmdline} hostname=web1 tabvisor.ip=10.0.12.1/24`, net("listen", "52:54:00:12:37:01"));
    await web.waitFor("root@web1:~# ", 0, 600_000);
    f.bootCold = performance.now() - t0;
    log(`qemu: boot to root prompt ${sec(f.bootCold)}`);
    await web.command(WAIT_SERVICES, 600_000);
    f.servicesMs = performance.now() - t0;
    log(`qemu: services up after ${sec(f.servicesMs)}`);
    t0 = performance.now();
    const py = await web.command(PY_SUM, 600_000);
    f.python = performance.now() - t0;
    if (!py.includes(PY_SUM_RESULT)) log("qemu: python3 printed something else");
    log(`qemu: ${PY_SUM}: ${sec(f.python)}`);
    const cli = new QemuVm(qemu, image, `${cmdline} hostname=cli1 tabvisor.ip=10.0.12.2/24`, net("connect", "52:54:00:12:37:02"));
    try {
      await cli.waitFor("root@cli1:~# ", 0, 600_000);
      await cli.command(WAIT_SERVICES, 600_000);
      const rps = await cli.command(rpsScript("10.0.12.1", RPS_SECONDS), 600_000);
      f.rps = Number(/rps=([\d.]+)/.exec(rps.split("\n").slice(1).join("\n"))?.[1]);
      log(`qemu: nginx from another VM: ${f.rps} requests/s`);
    } finally {
      cli.kill();
      web.kill();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return f;
}

const ours = await benchTabvisor();
const qemu = args["no-qemu"] ? undefined : findQemu();
let theirs: Figures | undefined;
if (qemu) {
  try {
    theirs = await benchQemu(qemu);
  } catch (e) {
    log(`qemu: failed: ${(e as Error).message}`);
  }
} else log("qemu: not installed (or --no-qemu): no comparison");

const row = (name: string, a: number | undefined, b: number | undefined, fmt: (n: number) => string, lowerIsBetter = true) => {
  const ratio = a !== undefined && b !== undefined && b > 0 ? (lowerIsBetter ? a / b : b / a) : undefined;
  log(`| ${name} | ${a === undefined ? "-" : fmt(a)} | ${b === undefined ? "-" : fmt(b)} | ${ratio === undefined ? "-" : ratio.toFixed(1) + "x"} |`);
};
log("\n| Debian image | Tabvisor | QEMU | Tabvisor/QEMU time |");
log("|---|---|---|---|");
row("boot to root prompt (cold)", ours.bootCold, theirs?.bootCold, sec);
row("boot to root prompt (chunks cached)", ours.bootCached, theirs?.bootCold, sec);
row("services up (sshd, nginx, PostgreSQL)", ours.servicesMs, theirs?.servicesMs, sec);
row("python3 sum of squares 10**6", ours.python, theirs?.python, sec);
row("nginx requests/s from another VM", ours.rps, theirs?.rps, (n) => n.toFixed(1), false);
log(`\nbytes fetched by the first boot: ${mb(ours.fetchedPrompt ?? 0)} to the prompt, ${mb(ours.fetchedServices ?? 0)} with the services up` +
  ` (image ${mb(manifest.size)}, ${manifest.chunks.filter(Boolean).length} chunks published)`);
process.exit(0);
