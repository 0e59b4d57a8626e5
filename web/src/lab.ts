// What a VM is made of (its spec), the sample lab a new user gets, the checks a new VM's settings go through, and
// where the lab is kept between visits (IndexedDB through idb-keyval).

import { get, set } from "idb-keyval";
import { computeLayout, MAX_RAM_MIB } from "../../emulator-core/src/layout.ts";
import { validateSpec, type MachineSpec } from "../../emulator-core/src/machine/description.ts";
import { makeLabSshKey } from "../../emulator-core/src/lab-ssh-key.ts";
import type { NetworkConfig } from "../net/switch-host.ts";

export { MAX_RAM_MIB };

export interface VmSpec {
  /** also the guest's hostname */
  name: string;
  ramMiB: number;
  /** the guest image (see IMAGES) */
  image: string;
  /** CPU cap, percent of one core (1..100) */
  cpuCap: number;
  /** share of the CPU when VMs compete (1..10000, default 100; see scheduler.ts) */
  weight: number;
  /** an in-memory disk (/dev/vda) of this many MiB; 0: none */
  diskMiB: number;
  /** memory asked back through the balloon (MiB; 0: none) */
  balloonMiB: number;
  /** extra kernel command-line arguments, after `console=ttyS0 hostname=NAME` */
  bootArgs: string;
  /** run it with the JIT (hot guest code compiled to WebAssembly; issue 14), for debugging and comparison; absent or
   *  false: the interpreter alone. Optional so that labs saved, and VMs sent by tabs, before it existed still load. */
  jit?: boolean;
  /** A VM made from a snapshot of a machine these fields cannot describe (one made in Node, say): its whole
   *  description, used as it is but for the host name on its command line and its cards' MACs. ramMiB and
   *  diskMiB then only repeat it for display. */
  machine?: MachineSpec;
  /** its network cards, eth0 first: the network each is plugged into (null: none) and its MAC. Absent: one card on
   *  the page's default network. Kept so that a reload (or a worker made again after a crash) gives the VM the
   *  cards it had; saved as the page has them (Hypervisor.savedSpecs). */
  cards?: { network?: string | null; mac?: string }[];
}

export interface GuestImageInfo {
  id: string;
  label: string;
  /** a system disk (the VM's /dev/vda is the image, fetched in chunks as read, under the VM's own blocks), booted
   *  without an initramfs; undefined: the busybox initramfs, with an optional blank disk */
  system?: { ramMiB: number; minRamMiB: number };
}

export const DEBIAN_IMAGE = "debian-13";

/** The images a VM can boot: the project's kernel with its busybox initramfs (public/images), and the Debian
 *  system disk when it is built (public/images/debian: npm run images:debian; the New VM dialog says which). */
export const IMAGES: GuestImageInfo[] = [
  { id: "busybox-linux-6.1", label: "Busybox Linux 6.1 (RISC-V 64, initramfs)" },
  // 128 MiB runs sshd, nginx and python3; PostgreSQL wants more, hence the default
  { id: DEBIAN_IMAGE, label: "Debian 13 trixie server (RISC-V 64, 2 GiB system disk)", system: { ramMiB: 512, minRamMiB: 128 } },
];

export const imageInfo = (id: string): GuestImageInfo | undefined => IMAGES.find((i) => i.id === id);

/** The page's default network: a VM gets one card on it, with an address from its gateway's DHCP, unless told
 *  otherwise. */
export const DEFAULT_NETWORK = { name: "lan", gateway: "10.0.1.1/24" };

export const MIN_RAM_MIB = 32;
/** The balloon always leaves the guest this much: below it, Linux runs out of memory for itself. */
export const BALLOON_FLOOR_MIB = 24;
export const maxBalloonMiB = (ramMiB: number) => Math.max(0, ramMiB - BALLOON_FLOOR_MIB);
export const DISK_SIZES_MIB = [0, 16, 64, 256];

const base = { image: IMAGES[0].id, cpuCap: 100, weight: 100, balloonMiB: 0, bootArgs: "" };

/** What a first visit shows: a small lab that boots by itself, its VMs with the JIT (as a new VM has it). */
export const SAMPLE_LAB: VmSpec[] = [
  { ...base, name: "web1", ramMiB: 64, diskMiB: 16, jit: true },
  { ...base, name: "web2", ramMiB: 64, diskMiB: 0, jit: true },
  { ...base, name: "db1", ramMiB: 128, diskMiB: 64, jit: true },
];

export function newSpec(name: string, over: Partial<VmSpec> = {}): VmSpec {
  return { ...base, name, ramMiB: 64, diskMiB: 0, ...over };
}

/** The kernel command line of a VM. A system image's (`system`: its own, from its manifest) also gets the time:
 *  the board has no clock that survives power-off, and its init sets the guest's clock from tabvisor.time. */
export function cmdlineOf(spec: VmSpec, system?: { cmdline: string; sshKey?: string }, now = Date.now()): string {
  if (spec.machine) return withHostname(spec.machine.cmdline, spec.name);
  const args = spec.bootArgs.trim() ? " " + spec.bootArgs.trim() : "";
  if (system && imageInfo(spec.image)?.system) {
    const key = system.sshKey ? ` tabvisor.sshkey=${system.sshKey}` : "";
    return `${system.cmdline} hostname=${spec.name} tabvisor.time=${Math.floor(now / 1000)}${key}${args}`;
  }
  return `console=ttyS0 hostname=${spec.name}${args}`;
}

/** `cmdline` with its hostname= (added when it has none) set to `name`. */
export function withHostname(cmdline: string, name: string): string {
  return /(^|\s)hostname=\S*/.test(cmdline) ? cmdline.replace(/(^|\s)hostname=\S*/, `$1hostname=${name}`) : `${cmdline} hostname=${name}`.trim();
}

/**
 * The VM spec for a machine from a snapshot, named `name`. A machine the dashboard itself would build (its RAM, a
 * disk of whole MiB, one card, rng and balloon, `console=ttyS0 hostname=... [args]`) becomes an ordinary VM;
 * anything else keeps its whole description in `machine`.
 */
export function vmSpecFromMachine(m: MachineSpec, name: string): VmSpec {
  const args = /^console=ttyS0 hostname=\S+(?: (.*))?$/.exec(m.cmdline);
  const disk = m.disks[0];
  const diskMiB = disk ? disk.sizeBytes / MiB : 0;
  const ordinary = args && !m.deterministic && m.rng && m.balloon === true && m.nics.length === 1 && m.disks.length <= 1 &&
    (!disk || (Number.isInteger(diskMiB) && diskMiB <= 1024 && disk.serial === "tabvisor-disk" && !disk.readOnly)) &&
    m.ramMiB >= MIN_RAM_MIB;
  const spec = newSpec(name, { ramMiB: m.ramMiB, diskMiB: Math.ceil(diskMiB) });
  if (ordinary) return { ...spec, bootArgs: args[1] ?? "" };
  return { ...spec, machine: validateSpec(m) };
}

const MiB = 1024 * 1024;

const NAME_RE = /^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$/;

/** Why `spec` cannot be a new VM next to VMs named `taken`, or undefined when it can. */
export function checkSpec(spec: VmSpec, taken: string[]): string | undefined {
  if (!NAME_RE.test(spec.name)) {
    return "Name: 1 to 32 lower-case letters, digits and dashes (not at either end); it becomes the guest's hostname.";
  }
  if (taken.some((n) => n.toLowerCase() === spec.name.toLowerCase())) return `There is already a VM named ${spec.name}.`;
  // what every VM has, however it is described
  if (typeof spec.cpuCap !== "number" || !(spec.cpuCap >= 1 && spec.cpuCap <= 100)) return "CPU cap: 1 to 100 percent of one core.";
  if (!(Number.isInteger(spec.weight) && spec.weight >= 1 && spec.weight <= 10000)) return "CPU weight: a whole number from 1 to 10000.";
  const ram = spec.ramMiB;
  if (!Number.isInteger(ram)) return "Memory: a whole number of MiB.";
  if (typeof spec.balloonMiB !== "number" || !(spec.balloonMiB >= 0 && spec.balloonMiB <= maxBalloonMiB(ram))) {
    return `Balloon: 0 to ${maxBalloonMiB(ram)} MiB (the guest keeps at least ${BALLOON_FLOOR_MIB}).`;
  }
  if (typeof spec.bootArgs !== "string" || spec.bootArgs.length > 512 || /[^\x20-\x7e]/.test(spec.bootArgs)) return "Boot arguments: printable ASCII, at most 512 characters.";
  if (spec.jit !== undefined && typeof spec.jit !== "boolean") return "JIT: on or off (true or false).";
  if (spec.cards !== undefined && (!Array.isArray(spec.cards) || spec.cards.length > 6 || spec.cards.some((c) =>
    !c || typeof c !== "object" || (c.network !== undefined && c.network !== null && typeof c.network !== "string") ||
    (c.mac !== undefined && !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(c.mac))))) {
    return "Cards: at most 6, each a network name (or none) and a MAC.";
  }
  if (spec.machine) {
    // a machine the fields cannot describe: its own description is checked instead of the fields below
    try {
      validateSpec(spec.machine);
    } catch (e) {
      return (e as Error).message;
    }
    return spec.machine.ramMiB === spec.ramMiB ? undefined : "Memory: the machine's description says otherwise.";
  }
  if (ram > MAX_RAM_MIB) {
    return `Memory: at most ${MAX_RAM_MIB} MiB. A VM's RAM lives in one WebAssembly memory, which cannot reach 4 GiB with the emulator's own data beside it.`;
  }
  if (ram < MIN_RAM_MIB) return `Memory: at least ${MIN_RAM_MIB} MiB (the kernel and its initramfs need about 20).`;
  const image = imageInfo(spec.image);
  if (!image) return `Unknown image ${spec.image}.`;
  if (image.system) {
    // the disk is the image's (its size comes with it)
    if (ram < image.system.minRamMiB) return `Memory: ${image.label} needs at least ${image.system.minRamMiB} MiB.`;
    return undefined;
  }
  if (!(Number.isInteger(spec.diskMiB) && spec.diskMiB >= 0 && spec.diskMiB <= 1024)) return "Disk: 0 to 1024 MiB.";
  return undefined;
}

/**
 * Can this browser give a VM `ramMiB` of memory now? Creates (and drops) a shared WebAssembly.Memory of the size
 * the VM's worker will ask for; a browser out of address space or memory refuses. Undefined when it can.
 */
export function probeMemory(ramMiB: number): string | undefined {
  let pages: number;
  try {
    pages = computeLayout(ramMiB).pages;
  } catch (e) {
    return (e as Error).message;
  }
  try {
    const m = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    void m;
    return undefined;
  } catch (e) {
    return `This browser cannot give a VM ${ramMiB} MiB now: creating its ${(pages / 16).toFixed(0)} MiB WebAssembly memory failed ` +
      `(${(e as Error).message || String(e)}). Give it less memory, or delete VMs you do not need (Chromium gives one tab about 120 ` +
      "WebAssembly memories, whatever their size).";
  }
}

/** A name like `base` that no VM in `taken` has: base itself when free (with firstSuffix 1), else base-2, base-3,
 *  ... (shortened to stay a valid name). */
export function uniqueName(base: string, taken: string[], firstSuffix = 2): string {
  const lower = new Set(taken.map((n) => n.toLowerCase()));
  const clean = base.toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 32).replace(/-+$/, "") || "vm";
  if (firstSuffix <= 1 && !lower.has(clean) && NAME_RE.test(clean)) return clean;
  for (let i = Math.max(2, firstSuffix); ; i++) {
    const suffix = `-${i}`;
    const name = clean.slice(0, 32 - suffix.length).replace(/-+$/, "") + suffix;
    if (!lower.has(name)) return name;
  }
}

/**
 * A lab given in the address: `?lab=name[:MiB],...` (e.g. `?lab=alpha,beta:128`). Such a lab is not saved, and
 * the saved one is left alone. Undefined when the address names none.
 */
export function labFromUrl(search: string): VmSpec[] | undefined {
  const raw = new URLSearchParams(search).get("lab");
  if (raw === null) return undefined;
  const specs: VmSpec[] = [];
  for (const item of raw.split(",").map((s) => s.trim()).filter(Boolean)) {
    const [name, mib] = item.split(":");
    const spec = newSpec(name.toLowerCase(), mib ? { ramMiB: Number(mib) } : {});
    if (!checkSpec(spec, specs.map((s) => s.name))) specs.push(spec);
  }
  return specs;
}

const STORE_KEY = "tabvisor.lab.v1";
const NETWORKS_KEY = "tabvisor.networks.v1";

/** The saved lab's networks (their configurations), as the last visit left them; undefined when none were saved. */
export async function loadSavedNetworks(): Promise<NetworkConfig[] | undefined> {
  try {
    const saved = await get<unknown>(NETWORKS_KEY);
    if (!Array.isArray(saved)) return undefined;
    return saved.filter((n): n is NetworkConfig => !!n && typeof n === "object" && typeof (n as NetworkConfig).name === "string");
  } catch {
    return undefined;
  }
}

export async function saveNetworks(networks: NetworkConfig[]): Promise<void> {
  try {
    await set(NETWORKS_KEY, networks.map((n) => ({ ...n })));
  } catch { /* not remembered */ }
}
const SSH_KEY = "tabvisor.labkey.v1";

/** The lab's SSH key (tabvisor.sshkey=, lab-ssh-key.ts): the saved lab keeps one for good (made on the first
 *  visit), so its VMs reach each other with `ssh NAME` across visits; a lab in the address gets its own for the
 *  visit. Undefined when this browser cannot make one (no Ed25519 in WebCrypto): the VMs then have none. */
export async function labSshKey(saved: boolean): Promise<string | undefined> {
  try {
    if (saved) {
      const have = await get<unknown>(SSH_KEY).catch(() => undefined);
      if (typeof have === "string" && /^[A-Za-z0-9+/=]{100,600}$/.test(have)) return have;
    }
    const made = (await makeLabSshKey()).param;
    if (saved) await set(SSH_KEY, made).catch(() => { /* not kept: a new one next visit */ });
    return made;
  } catch {
    return undefined;
  }
}

/** The lab saved by the last visit (undefined on a first visit or when storage is unavailable). */
export async function loadSavedLab(): Promise<VmSpec[] | undefined> {
  try {
    const saved = await get<unknown>(STORE_KEY);
    if (!Array.isArray(saved)) return undefined;
    const specs: VmSpec[] = [];
    for (const s of saved) {
      if (!s || typeof s !== "object") continue;
      const spec = { ...newSpec(""), ...(s as Partial<VmSpec>) };
      if (!checkSpec(spec, specs.map((x) => x.name))) specs.push(spec);
    }
    return specs;
  } catch {
    return undefined;
  }
}

export async function saveLab(specs: VmSpec[]): Promise<void> {
  try {
    await set(STORE_KEY, specs.map((s) => ({ ...s })));
  } catch { /* private windows may refuse storage: the lab just is not remembered */ }
}
