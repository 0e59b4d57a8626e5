// A LabHost (web/src/lab-run/runner.ts) over headless VMs in Node: what `npm run lab` and the gallery's tests build
// labs with. The page's host (web/src/lab-run/page-host.ts) does the same with its Hypervisor and NetworkHub.
//
// - A network is a VirtualSwitch with a Gateway on it (emulator-core/src/net): the gateway's address and prefix,
//   domain, DHCP on or off and its pool, DNS on or off, and the names of the lab's statically addressed VMs
//   (config.hosts, Gateway.addHost). Its capture keeps the last frames (captureCapacity, default 2000).
// - A VM is a NodeVm with the machine the page gives it: its RAM, an rng, a balloon and the agent channel, one
//   card per CardPlan in order (eth0, eth1, ...) with a fresh MAC, each plugged into its network's switch.
//   Its command line is web/src/lab.ts cmdlineOf's: `console=ttyS0 hostname=NAME` and the spec's boot arguments
//   for the busybox image (the project's kernel and initramfs); for a system image (Debian, lab.ts DEBIAN_IMAGE)
//   the image's own command line from its manifest, the time and the lab's SSH key (one per host, made with
//   makeLabSshKey), booted from the chunked disk in public/images/debian with a copy-on-write overlay in memory
//   (what the guest writes is gone with the VM), as `npm run vm -- --image debian` does.
//   A busybox VM of the dashboard's default shape (64 MiB, one card, no disk, no boot arguments) starts from the
//   template snapshot public/images/template.snap instead of booting, as in the page; a missing or stale
//   template is no error (it boots).
// - The balloon: its target is set to spec.balloonMiB at start, as the page does.
// - NOT applied in Node: the CPU cap and the CPU weight. NodeVm runs each guest as fast as the host lets it, every
//   VM taking turns on the one event loop; the page's scheduler (web/vm) is what enforces caps and weights. A lab
//   whose point is the cap shows it in the page; here it runs uncapped (its checks must not depend on it).
// - waitReady: the guest's agent (the control channel, emulator-core/src/agent) answers a cheap command with the
//   VM's own host name (a VM started from the template answers under the template's name until it has taken its
//   identity). exec and putFile go through the agent too.
// - typeSnippet: what the page does when a snippet is clicked: each line typed into the VM's console followed by
//   Enter, then waiting for the shell's prompt to come back.

import { readFileSync } from "node:fs";
import { NodeVm, DEFAULT_IMAGES, type OpenedTemplate } from "../emulator-core/src/node/vm.ts";
import { DEBIAN_IMAGE_DIR, DEBIAN_BUILD_HINT, openChunkedImage, readChunkedManifest } from "../emulator-core/src/node/chunked-image.ts";
import { VirtualSwitch, attachNic, type Port } from "../emulator-core/src/net/switch.ts";
import { Gateway } from "../emulator-core/src/net/gateway.ts";
import { MemoryBlockBackend } from "../emulator-core/src/machine/virtio/backends.ts";
import { openSnapshot } from "../emulator-core/src/snapshot/snapshot.ts";
import { makeLabSshKey } from "../emulator-core/src/lab-ssh-key.ts";
import { cmdlineOf, imageInfo, type VmSpec } from "../web/src/lab.ts";
import type { GuestResult, LabHost } from "../web/src/lab-run/runner.ts";
import type { CardPlan, CreateOptions } from "../web/src/hypervisor.ts";
import type { NetworkConfig } from "../web/net/switch-host.ts";

const MiB = 1024 * 1024;
const decoder = new TextDecoder();
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface NodeLabHostOptions {
  /** console output of every VM, with its name (default: kept only in each NodeVm's output) */
  onConsole?: (vm: string, text: string) => void;
  /** start default-shaped busybox VMs from the template snapshot (default true) */
  useTemplate?: boolean;
  /** VMs of a system image (Debian) are reached through their serial console instead of the agent: waitReady waits
   *  for the shell's prompt, exec and putFile are typed as shell commands. A stand-in for testing lab files on a
   *  Debian image built before its recipe installed the agent; it types into the VM's console, which the page
   *  never does. Default false. */
  consoleExec?: boolean;
}

interface NetworkEntry { sw: VirtualSwitch; gw: Gateway }
interface VmEntry {
  spec: VmSpec;
  /** settles once the VM runs (a template start is asynchronous) */
  started: Promise<NodeVm>;
  vm?: NodeVm;
  ports: { port: Port; network: string }[];
  removed: boolean;
  /** reached through its console (opts.consoleExec) */
  viaConsole: boolean;
  /** console commands one at a time */
  consoleQueue: Promise<unknown>;
}

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Is the Debian system image built here (public/images/debian/manifest.json)? */
export const debianImageBuilt = (): boolean => {
  try {
    return readChunkedManifest(DEBIAN_IMAGE_DIR) !== undefined;
  } catch {
    return false;
  }
};

export class NodeLabHost implements LabHost {
  private readonly networks = new Map<string, NetworkEntry>();
  private readonly vms = new Map<string, VmEntry>();
  private readonly macs = new Set<string>();
  private sshKey: Promise<string> | undefined;
  private template: Uint8Array | null | undefined;

  constructor(private readonly opts: NodeLabHostOptions = {}) {}

  vmNames(): string[] { return [...this.vms.keys()]; }
  networkNames(): string[] { return [...this.networks.keys()]; }

  /** The running NodeVm of a lab VM (undefined until it has started). */
  nodeVm(name: string): NodeVm | undefined { return this.vms.get(name)?.vm; }
  /** The network's switch and gateway (for its capture, leases, MAC table). */
  network(name: string): NetworkEntry | undefined { return this.networks.get(name); }

  createNetwork(config: NetworkConfig): void {
    if (this.networks.has(config.name)) throw new Error(`there is already a network named ${config.name}`);
    const [ip, prefix] = (config.gateway ?? "10.0.0.1/24").split("/");
    const sw = new VirtualSwitch({ name: config.name, captureCapacity: config.captureCapacity ?? 2000, floodLimit: config.floodLimit });
    const gw = new Gateway(sw, {
      ip, prefix: Number(prefix ?? 24), domain: config.domain, name: config.gatewayName, dhcp: config.dhcp, dns: config.dns,
      poolStart: config.poolStart, poolEnd: config.poolEnd,
    });
    for (const h of config.hosts ?? []) gw.addHost(h.name, h.address);
    this.networks.set(config.name, { sw, gw });
  }

  removeNetwork(name: string): void {
    const n = this.networks.get(name);
    if (!n) throw new Error(`no network named ${name}`);
    for (const e of this.vms.values()) {
      e.ports = e.ports.filter((p) => (p.network === name ? (p.port.detach(), false) : true));
    }
    n.gw.detach();
    this.networks.delete(name);
  }

  createVm(spec: VmSpec, options: CreateOptions & { cards: CardPlan[] }, start: boolean): void {
    if (this.vms.has(spec.name)) throw new Error(`there is already a VM named ${spec.name}`);
    const image = imageInfo(spec.image);
    if (!image) throw new Error(`unknown image ${spec.image}`);
    for (const c of options.cards) {
      if (c.network && !this.networks.has(c.network)) throw new Error(`no network named ${c.network}`);
    }
    const macs = options.cards.map((c) => this.freshMac(c.mac));
    let make: () => Promise<NodeVm>;
    const consoleText = new TextDecoder();
    const onConsole = this.opts.onConsole && ((bytes: Uint8Array) => { this.opts.onConsole!(spec.name, consoleText.decode(bytes, { stream: true })); });
    if (image.system) {
      const manifest = readChunkedManifest(DEBIAN_IMAGE_DIR);
      if (!manifest) throw new Error(`the Debian image is not built (no ${DEBIAN_IMAGE_DIR}manifest.json): ${DEBIAN_BUILD_HINT}`);
      const cmdline = typeof manifest.cmdline === "string" ? manifest.cmdline : "console=ttyS0 root=/dev/vda rw";
      make = async () => {
        const sshKey = await (this.sshKey ??= makeLabSshKey().then((k) => k.param));
        const { disk } = openChunkedImage(DEBIAN_IMAGE_DIR);
        return new NodeVm({
          ramMiB: spec.ramMiB, kernel: DEFAULT_IMAGES + "Image", diskBackend: disk, append: cmdlineOf(spec, { cmdline, sshKey }),
          nics: macs.length, macs, balloon: true, onConsole, jit: spec.jit === true,
        });
      };
    } else {
      const append = cmdlineOf(spec);
      const base = {
        ramMiB: spec.ramMiB, nics: macs.length, macs, balloon: true as const, append, hostname: spec.name, onConsole,
        jit: spec.jit === true, // the lab's per-VM setting, as the page applies it
        diskBackend: spec.diskMiB > 0 ? new MemoryBlockBackend(spec.diskMiB * MiB) : undefined,
      };
      const template = this.templateFor(spec, macs.length);
      make = async () => {
        if (template) {
          try {
            return await NodeVm.fromTemplate(template, base);
          } catch { /* a template of another shape or build: boot instead */ }
        }
        return new NodeVm(base);
      };
    }
    const entry: VmEntry = {
      spec, ports: [], removed: false, started: undefined as unknown as Promise<NodeVm>,
      viaConsole: !!image.system && !!this.opts.consoleExec, consoleQueue: Promise.resolve(),
    };
    entry.started = make().then((vm) => {
      if (entry.removed) { vm.stop(); throw new Error(`${spec.name} was removed`); }
      entry.vm = vm;
      options.cards.forEach((c, i) => {
        const net = c.network ? this.networks.get(c.network) : undefined;
        if (net) entry.ports.push({ network: c.network!, port: attachNic(net.sw, vm.nics[i], { name: `${spec.name}.eth${i}`, wake: () => vm.wake() }) });
      });
      if (spec.balloonMiB > 0) vm.balloon?.setTarget(Math.floor((spec.balloonMiB * MiB) / 4096));
      if (start) vm.start();
      return vm;
    });
    entry.started.catch(() => {});
    this.vms.set(spec.name, entry);
  }

  removeVm(name: string): void {
    const e = this.vms.get(name);
    if (!e) throw new Error(`no VM named ${name}`);
    e.removed = true;
    e.vm?.stop();
    for (const p of e.ports) p.port.detach();
    this.vms.delete(name);
  }

  /** Removes every VM and network (the end of a test or a CLI run). */
  removeAll(): void {
    for (const n of this.vmNames()) this.removeVm(n);
    for (const n of this.networkNames()) this.removeNetwork(n);
  }

  async waitReady(name: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const vm = await this.started(name, timeoutMs);
    if (this.vms.get(name)?.viaConsole) {
      await vm.waitFor(new RegExp(`@${name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(?:\\x1b\\[[0-9;]*m)*:[^\\n]*[#$] `), timeoutMs, 0);
      await this.consoleExec(name, vm, "true", Math.max(1000, deadline - Date.now()));
      return;
    }
    let last = "no answer";
    while (Date.now() < deadline) {
      try {
        const r = await vm.agent.exec("hostname", { timeoutMs: 2000, graceMs: Math.max(500, Math.min(3000, deadline - Date.now())) });
        const answer = decoder.decode(r.stdout).trim();
        if (r.exitCode === 0 && answer === name) return;
        last = `it answers as ${answer || "(no name)"}`;
      } catch (e) {
        last = (e as Error).message;
      }
      if (vm.machine.halted) throw new Error(`${name} stopped: ${vm.machine.haltReason ?? "it powered off"}`);
      await sleep(250);
    }
    throw new Error(`${name}'s guest did not answer on its control channel within ${Math.round(timeoutMs / 1000)} s (${last})`);
  }

  async exec(name: string, command: string, timeoutMs: number): Promise<GuestResult> {
    const vm = await this.started(name, timeoutMs);
    if (this.vms.get(name)?.viaConsole) return this.consoleExec(name, vm, command, timeoutMs);
    const r = await vm.agent.exec(command, { timeoutMs });
    return { exitCode: r.exitCode, timedOut: r.timedOut, stdout: decoder.decode(r.stdout), stderr: decoder.decode(r.stderr) };
  }

  async putFile(name: string, path: string, mode: number, data: Uint8Array): Promise<void> {
    const vm = await this.started(name, 60_000);
    if (this.vms.get(name)?.viaConsole) {
      const b64 = Buffer.from(data).toString("base64");
      const q = shellQuote(path);
      let cmd = `mkdir -p "$(dirname ${q})" && : > ${q}`;
      for (let at = 0; at < b64.length || at === 0; at += 1600) {
        cmd += ` && echo ${b64.slice(at, at + 1600) || "''"} | base64 -d >> ${q}`;
        if (at + 1600 >= b64.length) break;
      }
      const r = await this.consoleExec(name, vm, `${cmd} && chmod ${mode.toString(8)} ${q}`, 60_000);
      if (r.exitCode !== 0) throw new Error(`cannot write ${path}: ${r.stderr.trim() || `exit status ${r.exitCode}`}`);
      return;
    }
    // (the agent makes the missing directories above the path)
    await vm.agent.putFile(path, data, { mode });
  }

  /** A command run through the VM's console (opts.consoleExec): its status and output come back base64-encoded
   *  after a marker, so whatever it prints cannot be mistaken for them. */
  private consoleExec(name: string, vm: NodeVm, command: string, timeoutMs: number): Promise<GuestResult> {
    const entry = this.vms.get(name)!;
    const secs = Math.max(1, Math.ceil(timeoutMs / 1000));
    const line = `timeout -s KILL ${secs} sh -c ${shellQuote(command)} </dev/null >/tmp/.lab-out 2>/tmp/.lab-err; ` +
      `echo "@@RC $?"; base64 -w0 /tmp/.lab-out; echo; base64 -w0 /tmp/.lab-err; echo`;
    const run = entry.consoleQueue.then(async (): Promise<GuestResult> => {
      const out = (await vm.command(line, timeoutMs + 30_000)).replace(/\r/g, "");
      const m = /^@@RC (\d+)\n([A-Za-z0-9+/=]*)\n([A-Za-z0-9+/=]*)$/m.exec(out);
      if (!m) throw new Error(`no answer on ${name}'s console (${out.slice(-200)})`);
      const code = Number(m[1]);
      const text = (b: string) => Buffer.from(b, "base64").toString("utf8");
      return { exitCode: code === 137 ? -1 : code, timedOut: code === 137, stdout: text(m[2]), stderr: text(m[3]) };
    });
    entry.consoleQueue = run.catch(() => {});
    return run;
  }

  /**
   * Types `command` into the VM's console as a click on a snippet does (each line followed by Enter) and resolves
   * once the shell's prompt is back after the last line; rejects after timeoutMs. Returns what the console showed.
   */
  async typeSnippet(name: string, command: string, timeoutMs = 120_000): Promise<string> {
    const vm = await this.started(name, timeoutMs);
    const lines = command.replace(/\r\n?/g, "\n").replace(/\n+$/, "").split("\n");
    const deadline = Date.now() + timeoutMs;
    let shown = "";
    // a prompt (busybox `web1:~# `, Debian's bash `root@web1:~# ` with its colours and bracketed-paste switch) at the
    // very end of the output, or the shell's continuation prompt
    const host = name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    const prompt = new RegExp(`(?:${host}[^\\n]*[#$] |(?:^|\\n)> )(?:\\x1b\\[[0-9;?]*[A-Za-z])*$`);
    const entry = this.vms.get(name)!;
    const typed = entry.consoleQueue.then(async () => {
      for (const line of lines) {
        const from = vm.output.length;
        vm.send(line + "\r");
        shown += await vm.waitFor(prompt, Math.max(1, deadline - Date.now()), from);
      }
      return shown;
    });
    entry.consoleQueue = typed.catch(() => {});
    return typed;
  }

  private started(name: string, timeoutMs: number): Promise<NodeVm> {
    const e = this.vms.get(name);
    if (!e) return Promise.reject(new Error(`no VM named ${name}`));
    if (e.vm) return Promise.resolve(e.vm);
    let timer: NodeJS.Timeout;
    return Promise.race([
      e.started,
      new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${name} did not start within ${Math.round(timeoutMs / 1000)} s`)), timeoutMs); }),
    ]).finally(() => clearTimeout(timer));
  }

  /** The dashboard's template (64 MiB, one card, rng, balloon, no disk), for a busybox VM of that shape. */
  private templateFor(spec: VmSpec, cards: number): Promise<OpenedTemplate> | undefined {
    if (this.opts.useTemplate === false || spec.ramMiB !== 64 || cards !== 1 || spec.diskMiB > 0 || spec.bootArgs.trim() !== "") return undefined;
    if (this.template === undefined) {
      try {
        this.template = readFileSync(DEFAULT_IMAGES + "template.snap");
      } catch {
        this.template = null;
      }
    }
    // opened for each VM: a restore takes the state as its own
    return this.template ? openSnapshot(this.template) : undefined;
  }

  /** A locally administered unicast MAC no other card of this host has (or the one asked for). */
  private freshMac(asked?: string): number[] {
    if (asked) {
      this.macs.add(asked.toLowerCase());
      return asked.split(":").map((h) => parseInt(h, 16));
    }
    for (;;) {
      const mac = [0x52, 0x54, 0x00, ...crypto.getRandomValues(new Uint8Array(3))];
      const key = mac.map((b) => b.toString(16).padStart(2, "0")).join(":");
      if (!this.macs.has(key)) { this.macs.add(key); return mac; }
    }
  }
}
