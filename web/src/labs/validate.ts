// Checks a lab file, all of it: every error is reported (not just the first), each with the JSON path of the field
// and why, e.g. `vms[2].cards[0].network: no network named "lan2"`. Beyond the shape (which lab.schema.json also
// describes) it checks what refers to what (cards to networks, steps to VMs), that names are unique and valid host
// names, that addresses lie in their network and clash with nothing, and the product's limits (web/src/lab.ts). A
// lab that passes can be built whole: the plan (plan.ts) never meets a surprise halfway.

import { IMAGES, MAX_RAM_MIB, MIN_RAM_MIB, checkSpec, maxBalloonMiB } from "../lab.ts";
import { VIRTIO_SLOTS } from "../../../emulator-core/src/machine/description.ts";
import { defaultDhcpRange, firstHost, formatIpv4, formatSubnet, isHostOf, overlaps, parseIpv4, parseSubnet, broadcastOf, type Subnet } from "./ipv4.ts";
import { DEFAULT_MEMORY_MIB, normalizeLab } from "./normalize.ts";
import { systemOf } from "./system-image.ts";
import { LIMITS, SHAPES, type Shape } from "./shapes.ts";
import { LAB_FORMAT_VERSION, type FullLab, type Lab } from "./types.ts";
import { vmSpecOf } from "./vm-spec.ts";

export interface LabError {
  /** where: a JSON path such as `vms[2].cards[0].network`; "(lab)" for the whole file */
  path: string;
  /** why */
  message: string;
}

export type LabResult = { ok: true; lab: Lab; full: FullLab } | { ok: false; errors: LabError[] };

export const formatLabError = (e: LabError): string => `${e.path}: ${e.message}`;

/** A lab file larger than this is refused before it is parsed (a lab is text; its files are small configs). */
export const MAX_LAB_BYTES = 4 * 1024 * 1024;

/** The network name rule of the page's network hub (web/net/hub.ts createNetwork). */
export const NETWORK_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;
/** The VM name rule of web/src/lab.ts checkSpec: the name is the guest's host name. */
export const VM_NAME_RE = /^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$/;
const DOMAIN_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;
const MODE_RE = /^0?[0-7]{3}$/;
const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Devices besides the cards on every VM's board (rng, balloon, the control channel), and a disk when it has one. */
const FIXED_DEVICES = 3;
/** The most cards a VM can have: the board's virtio slots less the fixed devices (and less one more with a disk). */
export const maxCards = (diskMiB: number): number => VIRTIO_SLOTS - FIXED_DEVICES - (diskMiB > 0 ? 1 : 0);

/** Parses and validates a lab file's text. */
export function parseLabText(text: string): LabResult {
  if (new TextEncoder().encode(text).length > MAX_LAB_BYTES) {
    return { ok: false, errors: [{ path: "(lab)", message: `is larger than ${MAX_LAB_BYTES / 1048576} MiB` }] };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return { ok: false, errors: [{ path: "(lab)", message: `is not JSON (${(e as Error).message})` }] };
  }
  return validateLab(value);
}

export function validateLab(value: unknown): LabResult {
  const v = new Validator();
  const lab = v.lab(value);
  if (v.errors.length || !lab) return { ok: false, errors: v.errors };
  const full = normalizeLab(lab);
  // The product's own rules for a VM, the last word: should the format's checks ever let through a VM the page
  // would refuse, the file is refused here rather than half built.
  full.vms.forEach((vm, i) => {
    const why = checkSpec(vmSpecOf(vm, full), []);
    if (why) v.err(`vms[${i}]`, why);
  });
  return v.errors.length ? { ok: false, errors: v.errors } : { ok: true, lab, full };
}

type Obj = Record<string, unknown>;

const at = (path: string, key: string | number): string =>
  typeof key === "number" ? `${path}[${key}]` : path ? `${path}.${key}` : key;

const show = (x: unknown): string => (typeof x === "string" ? JSON.stringify(x) : JSON.stringify(x) ?? String(x));

interface NetInfo { name: string; subnet?: Subnet; gateway?: number; dhcp: boolean; range?: { first: number; last: number } }

class Validator {
  readonly errors: LabError[] = [];

  err(path: string, message: string): void {
    this.errors.push({ path: path || "(lab)", message });
  }

  lab(value: unknown): Lab | undefined {
    if (!isObj(value)) { this.err("", "must be a JSON object"); return undefined; }
    // the version first: a file of another version is not read any further (its fields may mean other things)
    if (!("version" in value)) { this.err("version", `is required (this page reads lab files of version ${LAB_FORMAT_VERSION})`); return undefined; }
    if (value.version !== LAB_FORMAT_VERSION) {
      this.err("version", `unknown version ${show(value.version)} (this page reads lab files of version ${LAB_FORMAT_VERSION})`);
      return undefined;
    }
    const o = this.fields(value, "", SHAPES.lab)!;
    this.str(o, "title", "", 1, LIMITS.titleChars);
    this.str(o, "description", "", 0, LIMITS.descriptionChars);
    const nets = this.list(o, "networks", "", LIMITS.networks).map((n, i) => this.network(n, at("networks", i)));
    this.unique(nets.map((n) => n?.name), "networks", "network", (a, b) => a.toLowerCase() === b.toLowerCase());
    const vmList = this.list(o, "vms", "", LIMITS.vms);
    const vmNames = vmList.map((x, i) => this.vm(x, at("vms", i), nets));
    this.unique(vmNames, "vms", "VM", (a, b) => a === b);
    this.addressClashes(vmList);
    const steps = this.list(o, "steps", "", LIMITS.steps);
    steps.forEach((s, i) => this.step(s, at("steps", i), vmNames));
    return value as unknown as Lab;
  }

  // ---- networks

  private network(value: unknown, path: string): NetInfo | undefined {
    const o = this.fields(value, path, SHAPES.network);
    if (!o) return undefined;
    const name = this.str(o, "name", path, 1, 32);
    if (name !== undefined && !NETWORK_NAME_RE.test(name)) {
      this.err(at(path, "name"), `${show(name)} is not a valid network name: 1 to 32 letters, digits, "_", "." and "-", starting with a letter or digit`);
    }
    const domain = this.str(o, "domain", path, 1, LIMITS.domainChars);
    if (domain !== undefined && !DOMAIN_RE.test(domain)) this.err(at(path, "domain"), `${show(domain)} is not a valid DNS domain (lower-case labels joined by ".")`);
    let subnet: Subnet | undefined;
    const subnetText = this.str(o, "subnet", path, 1, 18);
    if (subnetText !== undefined) {
      const p = parseSubnet(subnetText);
      if (!p.subnet) this.err(at(path, "subnet"), p.why!);
      else if (p.subnet.prefix < 8 || p.subnet.prefix > 30) this.err(at(path, "subnet"), `the prefix must be 8 to 30, not /${p.subnet.prefix}`);
      else subnet = p.subnet;
    }
    const info: NetInfo = { name: name ?? "", subnet, dhcp: true };
    if (subnet) { info.gateway = firstHost(subnet); info.range = defaultDhcpRange(subnet); }
    if (o.gateway === undefined) return info;
    const gpath = at(path, "gateway");
    const g = this.fields(o.gateway, gpath, SHAPES.gateway);
    if (!g) return info;
    info.dhcp = this.bool(g, "dhcp", gpath) ?? true;
    this.bool(g, "dns", gpath);
    const gw = this.address(g, "address", gpath, subnet, info.name);
    if (gw !== undefined) info.gateway = gw;
    if (g.dhcpRange !== undefined) {
      const rpath = at(gpath, "dhcpRange");
      const r = this.fields(g.dhcpRange, rpath, SHAPES.dhcpRange);
      const first = r && this.address(r, "first", rpath, subnet, info.name);
      const last = r && this.address(r, "last", rpath, subnet, info.name);
      if (first !== undefined && last !== undefined) {
        if (first > last) this.err(rpath, `first (${formatIpv4(first)}) comes after last (${formatIpv4(last)})`);
        else info.range = { first, last };
      }
    }
    return info;
  }

  /** An address field that must be a host address of `subnet`. */
  private address(o: Obj, key: string, path: string, subnet: Subnet | undefined, net: string): number | undefined {
    const s = this.str(o, key, path, 1, 15);
    if (s === undefined) return undefined;
    const ip = parseIpv4(s);
    if (ip === undefined) { this.err(at(path, key), `${show(s)} is not an IPv4 address`); return undefined; }
    if (subnet && !isHostOf(subnet, ip)) { this.err(at(path, key), `${s} is not a host address of ${net}'s subnet ${formatSubnet(subnet)}`); return undefined; }
    return ip;
  }

  // ---- VMs

  /** Checks a VM; returns its name (for the cross-references) when it has one. */
  private vm(value: unknown, path: string, nets: (NetInfo | undefined)[]): string | undefined {
    const o = this.fields(value, path, SHAPES.vm);
    if (!o) return undefined;
    const name = this.str(o, "name", path, 1, 32);
    if (name !== undefined && !VM_NAME_RE.test(name)) {
      this.err(at(path, "name"), `${show(name)} is not a valid VM name: 1 to 32 lower-case letters, digits and dashes, not at either end (it becomes the guest's host name)`);
    }
    const image = this.str(o, "image", path, 1, 64);
    if (image !== undefined && !IMAGES.some((i) => i.id === image)) {
      this.err(at(path, "image"), `unknown image ${show(image)} (this page has: ${IMAGES.map((i) => i.id).join(", ")})`);
    }
    const mem = this.int(o, "memoryMiB", path, MIN_RAM_MIB, MAX_RAM_MIB);
    const system = systemOf(image);
    if (system && mem !== undefined && mem < system.minRamMiB) {
      this.err(at(path, "memoryMiB"), `${mem} is too little for image ${image}: it needs at least ${system.minRamMiB}`);
    }
    this.int(o, "cpuCap", path, 1, 100);
    this.int(o, "cpuWeight", path, 1, LIMITS.cpuWeight);
    const balloon = this.int(o, "balloonMiB", path, 0, MAX_RAM_MIB);
    const ram = mem ?? system?.ramMiB ?? DEFAULT_MEMORY_MIB;
    if (balloon !== undefined && balloon > maxBalloonMiB(ram)) {
      this.err(at(path, "balloonMiB"), `${balloon} is more than this VM's memory allows (at most ${maxBalloonMiB(ram)}: the guest keeps at least ${ram - maxBalloonMiB(ram)} MiB)`);
    }
    // a system image is itself the VM's disk (diskMiB is then not used): it takes a device slot all the same
    const disk = system ? 1 : this.int(o, "diskMiB", path, 0, LIMITS.diskMiB) ?? 0;
    this.bool(o, "jit", path);
    const forwarding = this.bool(o, "forwarding", path);
    const cards = this.list(o, "cards", path, maxCards(0));
    if (cards.length <= maxCards(0) && cards.length > maxCards(disk)) {
      this.err(at(path, "cards"), `has ${cards.length} cards; a VM with a disk has room for at most ${maxCards(disk)} (the board has ${VIRTIO_SLOTS} device slots)`);
    }
    const cardNets = cards.map((c, i) => this.card(c, at(at(path, "cards"), i), nets));
    // two different networks whose subnets overlap on one VM: its routes could not tell them apart
    cardNets.forEach((n, j) => {
      const k = cardNets.findIndex((m) => m?.subnet && n?.subnet && m.name !== n.name && overlaps(m.subnet, n.subnet));
      if (k >= 0 && k < j) {
        this.err(at(at(at(path, "cards"), j), "network"), `${n!.name}'s subnet ${formatSubnet(n!.subnet!)} overlaps ${cardNets[k]!.name}'s ${formatSubnet(cardNets[k]!.subnet!)}, which cards[${k}] is on`);
      }
    });
    if (forwarding && cards.length < 2) this.err(at(path, "forwarding"), "a router needs at least two cards to forward between");
    this.list(o, "routes", path, LIMITS.routes).forEach((r, i) => this.route(r, at(at(path, "routes"), i), cardNets));
    const defaults = (Array.isArray(o.routes) ? o.routes : []).map((r, i) => (isObj(r) && r.to === "default" ? i : -1)).filter((i) => i >= 0);
    if (defaults.length > 1) this.err(at(at(path, "routes"), defaults[1]), `a second default route (routes[${defaults[0]}] is one)`);
    if (o.setup !== undefined) this.setup(o.setup, at(path, "setup"));
    return name;
  }

  /** Checks a card; returns the network it is on, when that network exists. */
  private card(value: unknown, path: string, nets: (NetInfo | undefined)[]): NetInfo | undefined {
    const o = this.fields(value, path, SHAPES.card);
    if (!o) return undefined;
    const name = this.str(o, "network", path, 1, 32);
    const net = name === undefined ? undefined : nets.find((n) => n?.name === name);
    if (name !== undefined && !net) this.err(at(path, "network"), `no network named ${show(name)}`);
    const addr = this.str(o, "address", path, 1, 15);
    if (addr === undefined || !net) return net;
    if (addr === "dhcp") {
      if (!net.dhcp) this.err(at(path, "address"), `"dhcp", but network ${net.name} has DHCP off: give a static address`);
      return net;
    }
    const ip = parseIpv4(addr);
    if (ip === undefined) { this.err(at(path, "address"), `${show(addr)} is neither "dhcp" nor an IPv4 address`); return net; }
    if (!net.subnet) return net;
    const where = `${net.name}'s subnet ${formatSubnet(net.subnet)}`;
    if (ip === net.subnet.base) this.err(at(path, "address"), `${addr} is the network address of ${where}`);
    else if (ip === broadcastOf(net.subnet)) this.err(at(path, "address"), `${addr} is the broadcast address of ${where}`);
    else if (!isHostOf(net.subnet, ip)) this.err(at(path, "address"), `${addr} is not inside ${where}`);
    else if (ip === net.gateway) this.err(at(path, "address"), `${addr} is the address of ${net.name}'s gateway`);
    else if (net.dhcp && net.range && ip >= net.range.first && ip <= net.range.last) {
      this.err(at(path, "address"), `${addr} is inside ${net.name}'s DHCP range ${formatIpv4(net.range.first)}-${formatIpv4(net.range.last)} (DHCP could lease it to another VM)`);
    }
    return net;
  }

  private route(value: unknown, path: string, cardNets: (NetInfo | undefined)[]): void {
    const o = this.fields(value, path, SHAPES.route);
    if (!o) return;
    const to = this.str(o, "to", path, 1, 18);
    if (to !== undefined && to !== "default") {
      const p = parseSubnet(to);
      if (!p.subnet) this.err(at(path, "to"), `${p.why} nor "default"`);
    }
    const via = this.str(o, "via", path, 1, 15);
    if (via === undefined) return;
    const ip = parseIpv4(via);
    if (ip === undefined) { this.err(at(path, "via"), `${show(via)} is not an IPv4 address`); return; }
    // (a card whose network is itself wrong is reported there: no second error here)
    if (cardNets.some((n) => !n?.subnet)) return;
    if (!cardNets.some((n) => n?.subnet && isHostOf(n.subnet, ip))) this.err(at(path, "via"), `${via} is not on any network this VM has a card on`);
  }

  private setup(value: unknown, path: string): void {
    const o = this.fields(value, path, SHAPES.setup);
    if (!o) return;
    const paths = this.list(o, "files", path, LIMITS.files).map((f, i) => this.file(f, at(at(path, "files"), i)));
    this.unique(paths, at(path, "files"), "file", (a, b) => a === b, "path");
    this.list(o, "commands", path, LIMITS.commands).forEach((c, i) => {
      if (typeof c !== "string") this.err(at(at(path, "commands"), i), "must be a string");
      else if (!c.trim() || c.length > LIMITS.commandChars) this.err(at(at(path, "commands"), i), `must be 1 to ${LIMITS.commandChars} characters and not blank`);
    });
  }

  private file(value: unknown, path: string): string | undefined {
    const o = this.fields(value, path, SHAPES.file);
    if (!o) return undefined;
    const p = this.str(o, "path", path, 1, LIMITS.pathChars);
    let good = p;
    if (p !== undefined) {
      if (!p.startsWith("/") || p.endsWith("/")) { this.err(at(path, "path"), `${show(p)} must be an absolute path to a file (starting with "/", not ending with it)`); good = undefined; }
      else if (p.includes("\0") || p.split("/").some((s) => s === ".." || s === ".")) { this.err(at(path, "path"), `${show(p)} must not have "." or ".." parts or NUL characters`); good = undefined; }
    }
    const mode = this.str(o, "mode", path, 3, 4);
    if (mode !== undefined && !MODE_RE.test(mode)) this.err(at(path, "mode"), `${show(mode)} is not an octal mode like "0644"`);
    const encoding = this.oneOf(o, "encoding", path, ["utf8", "base64"]);
    const content = this.str(o, "content", path, 0, Math.ceil(LIMITS.fileBytes / 3) * 4);
    if (content !== undefined) {
      const bytes = encoding === "base64" ? (BASE64_RE.test(content) ? (content.length / 4) * 3 - (content.match(/=+$/)?.[0].length ?? 0) : -1)
        : new TextEncoder().encode(content).length;
      if (bytes < 0) this.err(at(path, "content"), "is not base64 (the encoding says it is)");
      else if (bytes > LIMITS.fileBytes) this.err(at(path, "content"), `is ${bytes} bytes; a lab's file may have at most ${LIMITS.fileBytes}`);
    }
    return good;
  }

  /** Static addresses given twice on a network. */
  private addressClashes(vms: unknown[]): void {
    const seen = new Map<string, string>();
    vms.forEach((vm, i) => {
      if (!isObj(vm) || !Array.isArray(vm.cards)) return;
      vm.cards.forEach((c, j) => {
        if (!isObj(c) || typeof c.network !== "string" || typeof c.address !== "string" || c.address === "dhcp") return;
        const key = `${c.network} ${c.address}`;
        const where = `vms[${i}].cards[${j}]`;
        const first = seen.get(key);
        if (first) this.err(`${where}.address`, `${c.address} is also the address of ${first} on ${c.network}`);
        else seen.set(key, where);
      });
    });
  }

  // ---- steps

  private step(value: unknown, path: string, vmNames: (string | undefined)[]): void {
    const o = this.fields(value, path, SHAPES.step);
    if (!o) return;
    this.str(o, "title", path, 0, LIMITS.titleChars);
    this.str(o, "text", path, 0, LIMITS.textChars);
    const vmRef = (x: Obj, p: string) => {
      const name = this.str(x, "vm", p, 1, 32);
      if (name !== undefined && !vmNames.includes(name)) this.err(at(p, "vm"), `no VM named ${show(name)}`);
    };
    this.list(o, "snippets", path, LIMITS.itemsPerStep).forEach((s, i) => {
      const p = at(at(path, "snippets"), i);
      const x = this.fields(s, p, SHAPES.snippet);
      if (!x) return;
      vmRef(x, p);
      this.str(x, "command", p, 1, LIMITS.commandChars);
      this.str(x, "label", p, 1, LIMITS.labelChars);
    });
    this.list(o, "checks", path, LIMITS.itemsPerStep).forEach((c, i) => {
      const p = at(at(path, "checks"), i);
      const x = this.fields(c, p, SHAPES.check);
      if (!x) return;
      this.str(x, "title", p, 1, LIMITS.labelChars);
      vmRef(x, p);
      this.str(x, "command", p, 1, LIMITS.commandChars);
      this.int(x, "timeoutSeconds", p, 1, LIMITS.checkTimeoutSeconds);
      this.str(x, "hint", p, 0, LIMITS.textChars);
      if (x.pass !== undefined) this.pass(x.pass, at(p, "pass"));
    });
  }

  private pass(value: unknown, path: string): void {
    const o = this.fields(value, path, SHAPES.pass);
    if (!o) return;
    const exit = this.oneOf(o, "exit", path, ["zero", "any"]);
    const stdout = this.str(o, "stdout", path, 1, LIMITS.commandChars);
    if (stdout !== undefined) {
      try { new RegExp(stdout, "m"); } catch (e) { this.err(at(path, "stdout"), `is not a valid regular expression (${(e as Error).message})`); }
    }
    if (exit === "any" && o.stdout === undefined) this.err(path, `passes whatever the command does: give "stdout", or "exit": "zero"`);
  }

  // ---- the shape of values

  /** The object's fields, after refusing unknown ones and reporting missing required ones. */
  private fields(value: unknown, path: string, shape: Shape): Obj | undefined {
    if (!isObj(value)) { this.err(path, "must be an object"); return undefined; }
    for (const k of Object.keys(value)) {
      if (!shape.required.includes(k) && !shape.optional.includes(k)) this.err(at(path, k), "unknown field");
    }
    for (const k of shape.required) if (!(k in value)) this.err(at(path, k), "is required");
    return value;
  }

  private str(o: Obj, key: string, path: string, min: number, max: number): string | undefined {
    const x = o[key];
    if (x === undefined) return undefined;
    if (typeof x !== "string") { this.err(at(path, key), `must be a string, not ${show(x)}`); return undefined; }
    if (x.length < min || x.length > max) {
      this.err(at(path, key), min === 0 ? `is ${x.length} characters long; at most ${max}` : `must be ${min} to ${max} characters long, not ${x.length}`);
      return undefined;
    }
    return x;
  }

  private int(o: Obj, key: string, path: string, min: number, max: number): number | undefined {
    const x = o[key];
    if (x === undefined) return undefined;
    if (typeof x !== "number" || !Number.isInteger(x) || x < min || x > max) {
      this.err(at(path, key), `must be a whole number from ${min} to ${max}, not ${show(x)}`);
      return undefined;
    }
    return x;
  }

  private bool(o: Obj, key: string, path: string): boolean | undefined {
    const x = o[key];
    if (x === undefined) return undefined;
    if (typeof x !== "boolean") { this.err(at(path, key), `must be true or false, not ${show(x)}`); return undefined; }
    return x;
  }

  private oneOf<T extends string>(o: Obj, key: string, path: string, values: readonly T[]): T | undefined {
    const x = o[key];
    if (x === undefined) return undefined;
    if (!values.includes(x as T)) { this.err(at(path, key), `must be ${values.map((v) => show(v)).join(" or ")}, not ${show(x)}`); return undefined; }
    return x as T;
  }

  private list(o: Obj, key: string, path: string, max: number): unknown[] {
    const x = o[key];
    if (x === undefined) return [];
    if (!Array.isArray(x)) { this.err(at(path, key), `must be a list, not ${show(x)}`); return []; }
    if (x.length > max) this.err(at(path, key), `has ${x.length} entries; at most ${max}`);
    return x;
  }

  /** Names given twice in a list: the later one is reported. */
  private unique(names: (string | undefined)[], path: string, what: string, same: (a: string, b: string) => boolean, field = "name"): void {
    names.forEach((n, i) => {
      if (n === undefined) return;
      const j = names.findIndex((m) => m !== undefined && same(m, n));
      if (j < i) this.err(at(at(path, i), field), `${show(n)} is already the ${field} of ${what} ${at(path, j)}`);
    });
  }
}

function isObj(x: unknown): x is Obj {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}
