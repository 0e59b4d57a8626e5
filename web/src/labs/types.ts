// The lab file, version 1: what a teacher writes once and a student opens (a file, or a share link holding it).
// JSON; the same shape is described for editors and other tools by lab.schema.json beside this file, and checked by
// validate.ts (which also checks what a schema cannot say: names that refer to each other, addresses that must lie
// in their network). Every field maps onto something the page can do; the comments say onto what, and for the
// fields the page cannot yet apply by itself, how plan.ts realises them.
//
// Optional fields have the defaults given here; normalize.ts fills them in, so the rest of the code reads one shape.

/** The version this code reads and writes. A file of any other version is refused (never half understood). */
export const LAB_FORMAT_VERSION = 1;

export interface Lab {
  version: 1;
  /** shown as the lab's name (1 to 120 characters) */
  title: string;
  /** markdown, shown above the steps (default "") */
  description?: string;
  networks: LabNetwork[];
  vms: LabVm[];
  /** the lab's instructions, in order (default: none) */
  steps?: LabStep[];
}

/** A virtual network: a switch with a gateway service on it (NetworkHub.createNetwork, web/net/switch-host.ts). */
export interface LabNetwork {
  /** 1 to 32 letters, digits, "_", "." and "-", starting with a letter or digit (the hub's rule) */
  name: string;
  /** the network's IPv4 subnet in CIDR form, e.g. "10.0.1.0/24"; prefix 8 to 30 (the gateway needs room for
   *  clients) */
  subnet: string;
  /** the gateway service every network has (it answers ARP and ping for its address whatever the switches below) */
  gateway?: LabGateway;
  /** the DNS domain the gateway hands out (default "lab") */
  domain?: string;
}

export interface LabGateway {
  /** the gateway's own address, inside the subnet (default: the subnet's first host address, e.g. 10.0.1.1) */
  address?: string;
  /** hand out addresses by DHCP (default true) */
  dhcp?: boolean;
  /** answer DNS for the network's VMs (default true) */
  dns?: boolean;
  /** the addresses DHCP hands out (default: .100 to .199 of a /24, else every host address but the gateway's) */
  dhcpRange?: { first: string; last: string };
}

/** A VM: a VmSpec (web/src/lab.ts) plus its cards and its setup. */
export interface LabVm {
  /** its name and the guest's host name: 1 to 32 lower-case letters, digits and dashes, not at either end */
  name: string;
  /** an id of lab.ts IMAGES (default: the first, the busybox image) */
  image?: string;
  /** guest RAM in MiB, a whole number from MIN_RAM_MIB to MAX_RAM_MIB (default 64, or what a system image such as
   *  Debian's asks for; such an image also sets a higher minimum) */
  memoryMiB?: number;
  /** CPU cap, percent of one core, 1 to 100 (default 100) */
  cpuCap?: number;
  /** share of the CPU when VMs compete, a whole number from 1 to 10000 (default 100) */
  cpuWeight?: number;
  /** memory asked back through the balloon at start, MiB (default 0) */
  balloonMiB?: number;
  /** the disk (/dev/vda) in MiB, a whole number from 0 to 1024; 0: none (default 0). A system image is the disk
   *  itself: this is then not used */
  diskMiB?: number;
  /** run the VM with the JIT, hot guest code compiled to WebAssembly (VmSpec.jit; default false: the interpreter) */
  jit?: boolean;
  /** network cards eth0, eth1, ... in this order (may be empty: a VM on no network) */
  cards: LabCard[];
  /** route packets between its cards: a router (default false) */
  forwarding?: boolean;
  /** routes beyond those of its cards' subnets (default: none) */
  routes?: LabRoute[];
  /** what is put in place and run once, the first time the lab is built */
  setup?: LabSetup;
}

export interface LabCard {
  /** the name of the network it plugs into */
  network: string;
  /** "dhcp" (default), or a static IPv4 address inside the network's subnet (its prefix is the subnet's) */
  address?: string;
}

export interface LabRoute {
  /** "default", or a destination subnet in CIDR form */
  to: string;
  /** the next hop: an address inside the subnet of one of the VM's cards */
  via: string;
}

export interface LabSetup {
  /** files placed in the guest (through its control channel) before the commands run */
  files?: LabFile[];
  /** shell commands run at first boot, in order, each through the control channel (`/bin/sh -c`) */
  commands?: string[];
}

export interface LabFile {
  /** absolute path in the guest; missing directories are made */
  path: string;
  /** permission bits as an octal string, e.g. "0755" (default "0644") */
  mode?: string;
  /** the file's contents, as text (UTF-8) or base64 (see encoding) */
  content: string;
  /** how content is written (default "utf8") */
  encoding?: "utf8" | "base64";
}

/** One step of the instructions: text, things to type, things to check. */
export interface LabStep {
  /** short heading (default: none) */
  title?: string;
  /** markdown */
  text: string;
  /** click-to-run snippets (default: none) */
  snippets?: LabSnippet[];
  /** checks of the student's work (default: none) */
  checks?: LabCheck[];
}

/** Text typed into a VM's console when clicked, as if the student typed it (each line followed by Enter). */
export interface LabSnippet {
  vm: string;
  command: string;
  /** what the button says (default: the command) */
  label?: string;
}

/** A command run inside a VM through its control channel (not its console), judged by its exit status and output. */
export interface LabCheck {
  /** what it checks, shown beside its Check button */
  title: string;
  vm: string;
  command: string;
  /** seconds the command may take before it is killed and the check fails, 1 to 300 (default 10) */
  timeoutSeconds?: number;
  /** what passes (default: exit status 0) */
  pass?: LabPass;
  /** shown when the check fails (default: none) */
  hint?: string;
}

export interface LabPass {
  /** "zero": the command must exit with status 0 (default); "any": the status does not matter */
  exit?: "zero" | "any";
  /** a regular expression (JavaScript syntax, multi-line mode) the standard output must match somewhere */
  stdout?: string;
}

/** A lab with every default filled in (normalize.ts): what the plan and the page read. */
export interface FullLab {
  version: 1;
  title: string;
  description: string;
  networks: FullNetwork[];
  vms: FullVm[];
  steps: FullStep[];
}

export interface FullNetwork {
  name: string;
  subnet: string;
  domain: string;
  gateway: { address: string; dhcp: boolean; dns: boolean; dhcpRange: { first: string; last: string } };
}

export interface FullVm {
  name: string;
  image: string;
  memoryMiB: number;
  cpuCap: number;
  cpuWeight: number;
  balloonMiB: number;
  diskMiB: number;
  jit: boolean;
  cards: { network: string; address: string }[];
  forwarding: boolean;
  routes: LabRoute[];
  setup: { files: Required<LabFile>[]; commands: string[] };
}

export interface FullStep {
  title: string;
  text: string;
  snippets: Required<LabSnippet>[];
  checks: FullCheck[];
}

export interface FullCheck {
  title: string;
  vm: string;
  command: string;
  timeoutSeconds: number;
  pass: { exit: "zero" | "any"; stdout?: string };
  hint: string;
}
