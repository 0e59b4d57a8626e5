// The lab file format (web/src/labs/): validation with paths and reasons, the schema agreeing with the validator,
// share links, the Kathará and containerlab importers, and the build plan. Node only: no browser, no VM.

import { describe, it, expect } from "vitest";
import { readFileSync, readdirSync, existsSync } from "node:fs";
import { join } from "node:path";
import { zlibSync, strToU8 } from "fflate";
import { validateLab, parseLabText, formatLabError, type LabResult } from "../src/labs/validate.ts";
import { SHAPES, LIMITS } from "../src/labs/shapes.ts";
import { encodeLabLink, decodeLabLink, labFitsLink, toBase64Url, fromBase64Url, adler32, LINK_MAX_CHARS, ShareLinkError } from "../src/labs/share.ts";
import { planLab, waitForLease, CARD_DHCP_SCRIPT, CARD_DHCP_SCRIPT_TEXT, type LabOp } from "../src/labs/plan.ts";
import { normalizeLab } from "../src/labs/normalize.ts";
import { IMAGES, MAX_RAM_MIB, MIN_RAM_MIB, BALLOON_FLOOR_MIB } from "../src/lab.ts";
import type { Lab } from "../src/labs/types.ts";
import { importKathara } from "../src/labs/import-kathara.ts";
import { importContainerlab } from "../src/labs/import-containerlab.ts";
import { parseYaml } from "../src/labs/yaml.ts";
import { parseStartup } from "../src/labs/startup.ts";

const LABS_DIR = join(import.meta.dirname, "../src/labs");
const schema = JSON.parse(readFileSync(join(LABS_DIR, "lab.schema.json"), "utf8")) as SchemaNode;

/** Every lab shipped with the app: the examples, and the gallery once there is one. */
function shippedLabs(): { file: string; value: unknown }[] {
  const out: { file: string; value: unknown }[] = [];
  for (const dir of ["examples", "gallery"]) {
    const d = join(LABS_DIR, dir);
    if (!existsSync(d)) continue;
    for (const f of readdirSync(d).filter((x) => x.endsWith(".json")).sort()) {
      out.push({ file: `${dir}/${f}`, value: JSON.parse(readFileSync(join(d, f), "utf8")) });
    }
  }
  return out;
}

const errorsOf = (r: LabResult): string[] => (r.ok ? [] : r.errors.map(formatLabError));

// ---- a checker for the part of JSON Schema lab.schema.json uses (and nothing else: anything else fails loudly)

interface SchemaNode {
  $ref?: string; type?: string; const?: unknown; enum?: unknown[]; properties?: Record<string, SchemaNode>; required?: string[];
  additionalProperties?: boolean; items?: SchemaNode; maxItems?: number; minLength?: number; maxLength?: number;
  pattern?: string; minimum?: number; maximum?: number; $defs?: Record<string, SchemaNode>;
}
const KNOWN_KEYWORDS = new Set(["$schema", "$id", "$ref", "$defs", "title", "description", "type", "const", "enum", "properties", "required",
  "additionalProperties", "items", "maxItems", "minLength", "maxLength", "pattern", "minimum", "maximum"]);

function schemaErrors(value: unknown, node: SchemaNode = schema, path = ""): string[] {
  for (const k of Object.keys(node)) if (!KNOWN_KEYWORDS.has(k)) throw new Error(`the test's schema checker does not know ${k}`);
  if (node.$ref) return schemaErrors(value, schema.$defs![node.$ref.replace("#/$defs/", "")], path);
  const out: string[] = [];
  const here = path || "(lab)";
  if ("const" in node && value !== node.const) out.push(`${here}: not ${JSON.stringify(node.const)}`);
  if (node.enum && !node.enum.includes(value)) out.push(`${here}: not one of ${JSON.stringify(node.enum)}`);
  switch (node.type) {
    case undefined: break;
    case "object": {
      if (typeof value !== "object" || value === null || Array.isArray(value)) return [...out, `${here}: not an object`];
      const o = value as Record<string, unknown>;
      for (const r of node.required ?? []) if (!(r in o)) out.push(`${path ? path + "." : ""}${r}: missing`);
      for (const [k, v] of Object.entries(o)) {
        const p = `${path ? path + "." : ""}${k}`;
        if (node.properties?.[k]) out.push(...schemaErrors(v, node.properties[k], p));
        else if (node.additionalProperties === false) out.push(`${p}: not allowed`);
      }
      break;
    }
    case "array":
      if (!Array.isArray(value)) return [...out, `${here}: not an array`];
      if (node.maxItems !== undefined && value.length > node.maxItems) out.push(`${here}: too many items`);
      value.forEach((v, i) => out.push(...schemaErrors(v, node.items!, `${path}[${i}]`)));
      break;
    case "string":
      if (typeof value !== "string") return [...out, `${here}: not a string`];
      if (node.minLength !== undefined && value.length < node.minLength) out.push(`${here}: too short`);
      if (node.maxLength !== undefined && value.length > node.maxLength) out.push(`${here}: too long`);
      if (node.pattern !== undefined && !new RegExp(node.pattern, "u").test(value)) out.push(`${here}: does not match ${node.pattern}`);
      break;
    case "integer": case "number":
      if (typeof value !== "number" || (node.type === "integer" && !Number.isInteger(value))) return [...out, `${here}: not an ${node.type}`];
      if (node.minimum !== undefined && value < node.minimum) out.push(`${here}: below ${node.minimum}`);
      if (node.maximum !== undefined && value > node.maximum) out.push(`${here}: above ${node.maximum}`);
      break;
    case "boolean":
      if (typeof value !== "boolean") out.push(`${here}: not a boolean`);
      break;
    default: throw new Error(`the test's schema checker does not know type ${node.type}`);
  }
  return out;
}

// ---- labs to start from

const router = () => JSON.parse(readFileSync(join(LABS_DIR, "examples/router.lab.json"), "utf8")) as Lab;
/** `router()` changed by `edit` (which may break it). */
function broken(edit: (lab: any) => void): unknown {
  const lab = router();
  edit(lab);
  return lab;
}

describe("lab files", () => {
  it("every shipped lab passes the validator and the schema", () => {
    const labs = shippedLabs();
    expect(labs.length).toBeGreaterThanOrEqual(2);
    for (const { file, value } of labs) {
      expect(errorsOf(validateLab(value)), file).toEqual([]);
      expect(schemaErrors(value), file).toEqual([]);
    }
  });

  it("the schema lists exactly the fields the validator accepts, and which are required", () => {
    const defs = schema.$defs!;
    expect(Object.keys(defs).sort()).toEqual(Object.keys(SHAPES).sort());
    for (const [name, shape] of Object.entries(SHAPES)) {
      expect(Object.keys(defs[name].properties!).sort(), name).toEqual([...shape.required, ...shape.optional].sort());
      expect([...defs[name].required!].sort(), name).toEqual([...shape.required].sort());
      expect(defs[name].additionalProperties, name).toBe(false);
    }
  });

  it("the schema's limits are the product's and the validator's", () => {
    const p = (def: string, field: string) => schema.$defs![def].properties![field];
    expect(p("vm", "memoryMiB")).toMatchObject({ minimum: MIN_RAM_MIB, maximum: MAX_RAM_MIB });
    expect(p("vm", "balloonMiB")).toMatchObject({ maximum: MAX_RAM_MIB });
    expect(p("vm", "diskMiB")).toMatchObject({ maximum: LIMITS.diskMiB });
    expect(p("vm", "cpuWeight")).toMatchObject({ maximum: LIMITS.cpuWeight });
    expect(p("vm", "cards").maxItems).toBe(5);
    expect(p("lab", "vms").maxItems).toBe(LIMITS.vms);
    expect(p("lab", "networks").maxItems).toBe(LIMITS.networks);
    expect(p("check", "timeoutSeconds")).toMatchObject({ maximum: LIMITS.checkTimeoutSeconds });
    expect(p("lab", "title").maxLength).toBe(LIMITS.titleChars);
    expect(new RegExp(p("vm", "name").pattern!).test("web-1")).toBe(true);
    expect(new RegExp(p("vm", "name").pattern!).test("Web_1")).toBe(false);
    expect(IMAGES.length).toBeGreaterThan(0);
    expect(BALLOON_FLOOR_MIB).toBe(24); // the schema's description of balloonMiB says so
  });

  it("an unknown version is refused, and nothing else is read", () => {
    expect(errorsOf(validateLab({ ...router(), version: 2, vms: "nonsense" }))).toEqual([
      "version: unknown version 2 (this page reads lab files of version 1)",
    ]);
    expect(errorsOf(validateLab({ title: "x" }))).toEqual(["version: is required (this page reads lab files of version 1)"]);
    expect(errorsOf(validateLab({ ...router(), version: "1" }))).toEqual([
      'version: unknown version "1" (this page reads lab files of version 1)',
    ]);
  });

  // Each: a broken lab, every error the validator gives (path: reason), and whether the schema alone sees it.
  const MALFORMED: { name: string; lab: unknown; errors: string[]; schemaSees: boolean }[] = [
    {
      name: "not JSON at all", lab: "[1, 2", errors: [], schemaSees: true, // (parsed below with parseLabText)
    },
    {
      name: "a JIT setting that is not true or false",
      lab: broken((l) => { l.vms[0].jit = "yes"; l.vms[1].jit = 1; }),
      errors: ['vms[0].jit: must be true or false, not "yes"', "vms[1].jit: must be true or false, not 1"],
      schemaSees: true,
    },
    {
      name: "a card on a network that does not exist",
      lab: broken((l) => { l.vms[1].cards[1].network = "lan2"; }),
      errors: ['vms[1].cards[1].network: no network named "lan2"'],
      schemaSees: false,
    },
    {
      name: "a check and a snippet in VMs that do not exist",
      lab: broken((l) => { l.steps[0].checks[0].vm = "clinet"; l.steps[0].snippets[1].vm = "web2"; }),
      errors: ['steps[0].snippets[1].vm: no VM named "web2"', 'steps[0].checks[0].vm: no VM named "clinet"'],
      schemaSees: false,
    },
    {
      name: "two VMs of one name, two networks of one name (whatever its case)",
      lab: broken((l) => { l.vms[2].name = "client"; l.networks[1].name = "LAN"; }),
      errors: [
        'vms[1].cards[1].network: no network named "dmz"',
        'vms[2].cards[0].network: no network named "dmz"',
        'networks[1].name: "LAN" is already the name of network networks[0]',
        'vms[2].name: "client" is already the name of VM vms[0]',
      ],
      schemaSees: false,
    },
    {
      name: "names that are not host names, a network name with a space",
      lab: broken((l) => { l.vms[0].name = "Client_1"; l.vms[1].name = "-router"; l.networks[0].name = "my lan"; }),
      errors: [
        'networks[0].name: "my lan" is not a valid network name: 1 to 32 letters, digits, "_", "." and "-", starting with a letter or digit',
        'vms[0].cards[0].network: no network named "lan"',
        'vms[0].name: "Client_1" is not a valid VM name: 1 to 32 lower-case letters, digits and dashes, not at either end (it becomes the guest\'s host name)',
        'vms[1].name: "-router" is not a valid VM name: 1 to 32 lower-case letters, digits and dashes, not at either end (it becomes the guest\'s host name)',
        'vms[1].cards[0].network: no network named "lan"',
        'steps[0].snippets[0].vm: no VM named "client"',
        'steps[0].snippets[1].vm: no VM named "client"',
        'steps[0].checks[0].vm: no VM named "client"',
      ],
      schemaSees: true,
    },
    {
      name: "addresses outside their subnet, on the gateway, in the DHCP range, twice, not addresses",
      lab: broken((l) => {
        l.vms[1].cards[0].address = "10.0.1.150";
        l.vms[1].cards[1].address = "10.0.3.1";
        l.vms[2].cards[0].address = "10.0.2.1";
        l.vms[0].cards[0].address = "10.0.1";
        l.vms.push({ name: "web2", cards: [{ network: "dmz", address: "10.0.2.1" }] });
      }),
      errors: [
        'vms[0].cards[0].address: "10.0.1" is neither "dhcp" nor an IPv4 address',
        "vms[1].cards[0].address: 10.0.1.150 is inside lan's DHCP range 10.0.1.100-10.0.1.199 (DHCP could lease it to another VM)",
        "vms[1].cards[1].address: 10.0.3.1 is not inside dmz's subnet 10.0.2.0/24",
        "vms[2].cards[0].address: 10.0.2.1 is the address of dmz's gateway",
        "vms[3].cards[0].address: 10.0.2.1 is the address of dmz's gateway",
        "vms[3].cards[0].address: 10.0.2.1 is also the address of vms[2].cards[0] on dmz",
      ],
      schemaSees: true,
    },
    {
      name: "memory, CPU, balloon and disk outside the product's limits",
      lab: broken((l) => { Object.assign(l.vms[0], { memoryMiB: 4096, cpuCap: 0, cpuWeight: 2.5, diskMiB: 2048 }); Object.assign(l.vms[1], { memoryMiB: 48, balloonMiB: 40 }); }),
      errors: [
        "vms[0].memoryMiB: must be a whole number from 32 to 2048, not 4096",
        "vms[0].cpuCap: must be a whole number from 1 to 100, not 0",
        "vms[0].cpuWeight: must be a whole number from 1 to 10000, not 2.5",
        "vms[0].diskMiB: must be a whole number from 0 to 1024, not 2048",
        "vms[1].balloonMiB: 40 is more than this VM's memory allows (at most 24: the guest keeps at least 24 MiB)",
      ],
      schemaSees: true,
    },
    {
      name: "unknown fields, missing fields, wrong types",
      lab: broken((l) => { l.vms[0].memmory = 64; delete l.vms[1].cards; l.networks[0].gateway = { dhcp: "yes" }; l.title = 7; l.steps = {}; }),
      errors: [
        "title: must be a string, not 7",
        'networks[0].gateway.dhcp: must be true or false, not "yes"',
        "vms[0].memmory: unknown field",
        "vms[1].cards: is required",
        "vms[1].forwarding: a router needs at least two cards to forward between",
        "steps: must be a list, not {}",
      ],
      schemaSees: true,
    },
    {
      name: "a subnet with host bits, a tiny subnet, a gateway outside, a DHCP range the wrong way round",
      lab: broken((l) => {
        l.networks[0].subnet = "10.0.1.7/24";
        l.networks[1].subnet = "10.0.2.0/31";
        l.networks.push({ name: "x", subnet: "192.168.0.0/24", gateway: { address: "192.168.1.1", dhcpRange: { first: "192.168.0.200", last: "192.168.0.100" } } });
      }),
      errors: [
        'networks[0].subnet: "10.0.1.7/24" has host bits set (the subnet is 10.0.1.0/24)',
        "networks[1].subnet: the prefix must be 8 to 30, not /31",
        "networks[2].gateway.address: 192.168.1.1 is not a host address of x's subnet 192.168.0.0/24",
        "networks[2].gateway.dhcpRange: first (192.168.0.200) comes after last (192.168.0.100)",
      ],
      schemaSees: false,
    },
    {
      name: "routes: a bad destination, a next hop on no network of the VM, two defaults",
      lab: broken((l) => {
        l.vms[0].routes = [{ to: "10.0.2/24", via: "10.0.1.254" }, { to: "default", via: "10.0.9.1" }, { to: "default", via: "10.0.1.254" }];
      }),
      errors: [
        'vms[0].routes[0].to: "10.0.2/24" is not a subnet in CIDR form (like 10.0.1.0/24) nor "default"',
        "vms[0].routes[1].via: 10.0.9.1 is not on any network this VM has a card on",
        "vms[0].routes[2]: a second default route (routes[1] is one)",
      ],
      schemaSees: true,
    },
    {
      name: "setup files: a relative path, a path with .., a bad mode, bad base64, the same path twice, a blank command",
      lab: broken((l) => {
        l.vms[2].setup.files = [
          { path: "www/index.html", content: "x" },
          { path: "/www/../etc/passwd", content: "x" },
          { path: "/a", content: "x", mode: "0999" },
          { path: "/b", content: "not base64!", encoding: "base64" },
          { path: "/a", content: "y", encoding: "latin1" },
        ];
        l.vms[2].setup.commands = ["  "];
      }),
      errors: [
        'vms[2].setup.files[0].path: "www/index.html" must be an absolute path to a file (starting with "/", not ending with it)',
        'vms[2].setup.files[1].path: "/www/../etc/passwd" must not have "." or ".." parts or NUL characters',
        'vms[2].setup.files[2].mode: "0999" is not an octal mode like "0644"',
        "vms[2].setup.files[3].content: is not base64 (the encoding says it is)",
        'vms[2].setup.files[4].encoding: must be "utf8" or "base64", not "latin1"',
        'vms[2].setup.files[4].path: "/a" is already the path of file vms[2].setup.files[2]',
        "vms[2].setup.commands[0]: must be 1 to 4096 characters and not blank",
      ],
      schemaSees: true,
    },
    {
      name: "checks: a bad regular expression, a check that always passes, a timeout too long; DHCP asked of a network without it; overlapping subnets on one VM",
      lab: broken((l) => {
        l.steps[0].checks.push({ title: "t", vm: "web", command: "true", pass: { exit: "any" } });
        l.steps[0].checks.push({ title: "u", vm: "web", command: "true", timeoutSeconds: 3600, pass: { stdout: "(" } });
        l.vms[2].cards[0].address = "dhcp";
        l.networks.push({ name: "wide", subnet: "10.0.0.0/16" });
        l.vms[0].cards.push({ network: "wide" });
      }),
      errors: [
        'vms[2].cards[0].address: "dhcp", but network dmz has DHCP off: give a static address',
        'steps[0].checks[1].pass: passes whatever the command does: give "stdout", or "exit": "zero"',
        "steps[0].checks[2].timeoutSeconds: must be a whole number from 1 to 300, not 3600",
        "steps[0].checks[2].pass.stdout: is not a valid regular expression (Invalid regular expression: /(/m: Unterminated group)",
        "vms[0].cards[1].network: wide's subnet 10.0.0.0/16 overlaps lan's 10.0.1.0/24, which cards[0] is on",
      ],
      schemaSees: true,
    },
    {
      name: "a router with one card, too many cards for a VM with a disk, an unknown image",
      lab: broken((l) => {
        l.vms[1].cards = [l.vms[1].cards[0]];
        l.vms[2].cards = Array.from({ length: 5 }, () => ({ network: "lan" }));
        l.vms[2].image = "debian-12";
      }),
      errors: [
        "vms[1].forwarding: a router needs at least two cards to forward between",
        `vms[2].image: unknown image "debian-12" (this page has: ${IMAGES.map((i) => i.id).join(", ")})`,
        "vms[2].routes[0].via: 10.0.2.254 is not on any network this VM has a card on",
        "vms[2].cards: has 5 cards; a VM with a disk has room for at most 4 (the board has 8 device slots)",
      ],
      schemaSees: false,
    },
  ];

  for (const m of MALFORMED) {
    it(`refuses: ${m.name}`, () => {
      const r = typeof m.lab === "string" ? parseLabText(m.lab) : validateLab(m.lab);
      expect(r.ok).toBe(false);
      if (typeof m.lab === "string") {
        expect(errorsOf(r)).toEqual([expect.stringMatching(/^\(lab\): is not JSON \(/)]);
        return;
      }
      expect([...errorsOf(r)].sort()).toEqual([...m.errors].sort());
      // the schema is not the whole story (it cannot follow references), but what it does say it must say
      if (m.schemaSees) expect(schemaErrors(m.lab).length).toBeGreaterThan(0);
    });
  }

  it("the first error is where it is reported first (in file order)", () => {
    const r = validateLab(broken((l) => { l.vms[0].cards[0].network = "nope"; l.vms[2].cards[0].network = "nope"; }));
    expect(errorsOf(r)[0]).toBe('vms[0].cards[0].network: no network named "nope"');
  });
});

describe("share links", () => {
  const link = (json: string | Uint8Array) => `#lab=v1.${toBase64Url(zlibSync(typeof json === "string" ? strToU8(json) : json))}`;

  it("a lab goes into a link and comes back the same", () => {
    for (const { file, value } of shippedLabs()) {
      const fragment = encodeLabLink(value as Lab);
      expect(fragment, file).toMatch(/^#lab=v1\.[A-Za-z0-9_-]+$/);
      expect(decodeLabLink(fragment), file).toEqual(value);
      // what the page reads from location.hash, and the same without the "#"
      expect(decodeLabLink(fragment.slice(1))).toEqual(value);
    }
  });

  it("base64url and Adler-32 are the standard ones", () => {
    for (let n = 0; n < 20; n++) {
      const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 97 + n * 13) & 255);
      expect(toBase64Url(bytes)).toBe(Buffer.from(bytes).toString("base64url"));
      expect(fromBase64Url(toBase64Url(bytes))).toEqual(bytes);
    }
    expect(adler32(strToU8("Wikipedia"))).toBe(0x11e60398);
    const big = new Uint8Array(100_000).fill(255);
    const z = zlibSync(big);
    expect(adler32(big)).toBe(Buffer.from(z.subarray(z.length - 4)).readUInt32BE(0));
  });

  it("a lab too large for a link is said to be so, and is not made into one", () => {
    const lab = router();
    // random text hardly compresses: over 10 000 base64url characters
    let seed = 1;
    const noise = Array.from({ length: 9000 }, () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return String.fromCharCode(33 + (seed % 90)); }).join("");
    (lab.vms[2].setup!.files ??= []).push({ path: "/noise", content: noise });
    expect(validateLab(lab).ok).toBe(true);
    const fit = labFitsLink(lab);
    expect(fit.fits).toBe(false);
    expect(fit.chars).toBeGreaterThan(LINK_MAX_CHARS);
    expect(() => encodeLabLink(lab)).toThrow(`the lab makes a link of ${fit.chars} characters, more than ${LINK_MAX_CHARS}: share it as a file`);
    expect(labFitsLink(router()).fits).toBe(true);
  });

  const good = encodeLabLink(router());
  const flip = (s: string, i: number) => s.slice(0, i) + (s[i] === "A" ? "B" : "A") + s.slice(i + 1);
  const MALFORMED_LINKS: { name: string; hash: string; error: string }[] = [
    { name: "no lab in the fragment", hash: "#section-2", error: "the link holds no lab (its fragment does not start with #lab=)" },
    { name: "no version", hash: "#lab=eJzLSM3JyVcozy_KSQEAGgQEXQ", error: "the link's lab has no version (expected #lab=v1.<data>)" },
    { name: "another version", hash: good.replace("#lab=v1.", "#lab=v2."), error: "the link is of lab format version 2; this page reads version 1" },
    { name: "a character base64url does not have", hash: "#lab=v1.eJzL%20SM3", error: "the link's data is not base64url (\"%\" at character 5)" },
    { name: "padding (base64, not base64url)", hash: "#lab=v1.eJzLSM3=", error: "the link's data is not base64url (\"=\" at character 8)" },
    { name: "a length base64url never makes", hash: good.slice(0, 8 + 4 * 20 + 1), error: "the link's data is cut short (its length is not one base64url makes)" },
    { name: "cut short", hash: good.slice(0, Math.floor(good.length / 2) & ~3), error: "the link's data is corrupt or cut short (unexpected EOF)" },
    // (the checksum is the data's last four bytes: a link cut anywhere loses some of the compressed stream too)
    { name: "its last character cut off", hash: good.slice(0, good.length - 1), error: "the link's data is corrupt or cut short (unexpected EOF)" },
    { name: "a character changed in its checksum", hash: flip(good, good.length - 2), error: "the link's data is corrupt or cut short (its checksum does not match)" },
    { name: "not compressed data", hash: `#lab=v1.${toBase64Url(strToU8('{"version":1}'))}`, error: "the link's data is corrupt (it is not compressed data this page makes)" },
    { name: "longer than any lab link", hash: `#lab=v1.${"A".repeat(LINK_MAX_CHARS)}`, error: `the link is ${LINK_MAX_CHARS + 8} characters long, more than a lab link may be (${LINK_MAX_CHARS})` },
    { name: "a decompression bomb", hash: link(new Uint8Array(2 * 1024 * 1024).fill(32)), error: "the link's lab is larger than 1 MiB" },
    { name: "not UTF-8", hash: link(Uint8Array.of(0x22, 0xff, 0xfe, 0x22)), error: "the link's data is corrupt (its text is not UTF-8)" },
    { name: "a lab of another version inside", hash: link(JSON.stringify({ ...router(), version: 3 })), error: "the link's lab has 1 error: version: unknown version 3 (this page reads lab files of version 1)" },
    {
      name: "a lab with errors inside", hash: link(JSON.stringify(broken((l) => { l.vms[0].cards[0].network = "wan"; l.vms[1].memoryMiB = 1; }))),
      error: 'the link\'s lab has 2 errors: vms[0].cards[0].network: no network named "wan"; vms[1].memoryMiB: must be a whole number from 32 to 2048, not 1',
    },
  ];

  for (const m of MALFORMED_LINKS) {
    it(`refuses a link: ${m.name}`, () => {
      let caught: unknown;
      try { decodeLabLink(m.hash); } catch (e) { caught = e; }
      expect(caught).toBeInstanceOf(ShareLinkError);
      expect((caught as Error).message).toBe(m.error);
    });
  }

  it("a link whose lab has errors carries them, path by path", () => {
    try {
      decodeLabLink(link(JSON.stringify(broken((l) => { l.steps[0].checks[0].vm = "nobody"; }))));
      expect.unreachable();
    } catch (e) {
      expect((e as ShareLinkError).errors).toEqual([{ path: "steps[0].checks[0].vm", message: 'no VM named "nobody"' }]);
    }
    expect(() => decodeLabLink(link("{\"version\": 1,"))).toThrow(/^the link's lab is not JSON \(/);
  });
});

describe("the build plan", () => {
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  const spec = (name: string, over: object) => ({ name, image: IMAGES[0].id, ramMiB: 64, cpuCap: 100, weight: 100, diskMiB: 0, balloonMiB: 0, bootArgs: "", ...over });

  it("the router lab: networks, names for static addresses, VMs as the Hypervisor takes them, then each guest's setup", () => {
    const r = validateLab(router());
    if (!r.ok) throw new Error("the example is valid");
    const ops = planLab(r.full);
    const shown = ops.map((o) => (o.kind === "put-file" ? { ...o, data: text(o.data) } : o));
    expect(shown).toEqual([
      { kind: "create-network", config: { name: "lan", gateway: "10.0.1.1/24", domain: "lab", dhcp: true, dns: true, poolStart: "10.0.1.100", poolEnd: "10.0.1.199" } },
      { kind: "create-network", config: { name: "dmz", gateway: "10.0.2.1/24", domain: "lab", dhcp: false, dns: true, poolStart: "10.0.2.100", poolEnd: "10.0.2.199" } },
      { kind: "register-name", network: "lan", name: "router", address: "10.0.1.254" },
      { kind: "register-name", network: "dmz", name: "router", address: "10.0.2.254" },
      { kind: "register-name", network: "dmz", name: "web", address: "10.0.2.10" },
      { kind: "create-vm", vm: "client", spec: spec("client", {}), options: { cards: [{ network: "lan" }], keepDisk: false }, start: true },
      {
        kind: "create-vm", vm: "router", start: true,
        spec: spec("router", { ramMiB: 48, cpuCap: 50, bootArgs: "tabvisor.ip=10.0.1.254/24 tabvisor.gw=10.0.1.1 tabvisor.dns=10.0.1.1" }),
        options: { cards: [{ network: "lan" }, { network: "dmz" }], keepDisk: false },
      },
      {
        kind: "create-vm", vm: "web", start: true,
        spec: spec("web", { weight: 200, diskMiB: 16, bootArgs: "tabvisor.ip=10.0.2.10/24 tabvisor.gw=10.0.2.1 tabvisor.dns=10.0.2.1" }),
        options: { cards: [{ network: "dmz" }], keepDisk: false },
      },
      { kind: "wait-ready", vm: "client", timeoutMs: 120_000 },
      // its DHCP lease before its route (whose next hop is on eth0's network)
      { kind: "exec", vm: "client", command: waitForLease("eth0", 12), timeoutMs: 15_000, purpose: "network" },
      { kind: "exec", vm: "client", command: "ip route replace 10.0.2.0/24 via 10.0.1.254", timeoutMs: 15_000, purpose: "network" },
      { kind: "wait-ready", vm: "router", timeoutMs: 120_000 },
      { kind: "exec", vm: "router", command: "ip link set eth1 up && ip addr add 10.0.2.254/24 dev eth1", timeoutMs: 15_000, purpose: "network" },
      { kind: "exec", vm: "router", command: "echo 1 > /proc/sys/net/ipv4/ip_forward", timeoutMs: 15_000, purpose: "network" },
      { kind: "wait-ready", vm: "web", timeoutMs: 120_000 },
      { kind: "exec", vm: "web", command: "ip route replace 10.0.1.0/24 via 10.0.2.254", timeoutMs: 15_000, purpose: "network" },
      { kind: "put-file", vm: "web", path: "/www/index.html", mode: 0o644, data: "<h1>hello from the dmz</h1>\n" },
      { kind: "put-file", vm: "web", path: "/usr/local/bin/serve", mode: 0o755, data: "#!/bin/sh\nexec httpd -h /www -p 80\n" },
      { kind: "exec", vm: "web", command: "/usr/local/bin/serve", timeoutMs: 120_000, purpose: "setup" },
    ] satisfies unknown[]);
  });

  it("a VM's JIT setting: true makes a VM with the JIT, false or absent one without (the interpreter)", () => {
    const r = validateLab(broken((l) => { l.vms[0].jit = true; l.vms[1].jit = false; }));
    if (!r.ok) throw new Error(r.errors.map(formatLabError).join("; "));
    expect(schemaErrors(r.lab)).toEqual([]);
    expect(r.full.vms.map((v) => v.jit)).toEqual([true, false, false]);
    const specs = planLab(r.full).flatMap((o) => (o.kind === "create-vm" ? [o.spec] : []));
    expect(specs.map((s) => s.jit)).toEqual([true, undefined, undefined]);
    // and a share link carries it
    expect((decodeLabLink(encodeLabLink(r.lab)) as Lab).vms[0].jit).toBe(true);
  });

  it("a default route through a router on a static eth0 goes on the command line; DHCP on eth1 is started; base64 files are decoded", () => {
    const lab: Lab = {
      version: 1, title: "t",
      networks: [
        { name: "a", subnet: "172.16.0.0/16", gateway: { dns: false, dhcpRange: { first: "172.16.1.1", last: "172.16.1.200" } } },
        { name: "b", subnet: "192.168.5.0/24" },
      ],
      vms: [
        { name: "r", cards: [{ network: "a", address: "172.16.0.254" }, { network: "b", address: "192.168.5.254" }], forwarding: true },
        {
          name: "h", memoryMiB: 32, cards: [{ network: "a", address: "172.16.9.9" }, { network: "b" }], routes: [{ to: "default", via: "172.16.0.254" }],
          setup: { files: [{ path: "/bin/x", content: "AAEC/w==", encoding: "base64", mode: "755" }] },
        },
      ],
    };
    const r = validateLab(lab);
    expect(errorsOf(r)).toEqual([]);
    const ops = planLab(normalizeLab(lab));
    const h = ops.filter((o): o is Exclude<LabOp, { kind: "create-network" | "register-name" }> => "vm" in o && o.vm === "h");
    expect(h[0]).toMatchObject({ kind: "create-vm", spec: { ramMiB: 32, bootArgs: "tabvisor.ip=172.16.9.9/16 tabvisor.gw=172.16.0.254" } });
    expect(h.slice(1)).toEqual([
      { kind: "wait-ready", vm: "h", timeoutMs: 120_000 },
      // eth1's DHCP with the plan's script (eth0's default route and name server stay), then its lease awaited
      { kind: "put-file", vm: "h", path: CARD_DHCP_SCRIPT, mode: 0o755, data: new TextEncoder().encode(CARD_DHCP_SCRIPT_TEXT) },
      {
        kind: "exec", vm: "h", timeoutMs: 15_000, purpose: "network",
        command: `ip link set eth1 up && udhcpc -i eth1 -s ${CARD_DHCP_SCRIPT} -x hostname:h -p /run/udhcpc.eth1.pid -b -t 5 -T 1 </dev/null >>/run/udhcpc.eth1.log 2>&1`,
      },
      { kind: "exec", vm: "h", command: waitForLease("eth1", 12), timeoutMs: 15_000, purpose: "network" },
      { kind: "put-file", vm: "h", path: "/bin/x", mode: 0o755, data: Uint8Array.of(0, 1, 2, 255) },
    ]);
    // DNS is off on "a": its static addresses are registered nowhere; on "b" the router's is
    expect(ops.filter((o) => o.kind === "register-name")).toEqual([{ kind: "register-name", network: "b", name: "r", address: "192.168.5.254" }]);
  });
});

describe("importing", () => {
  const KATHARA = {
    "lab.conf": [
      'LAB_NAME="Two LANs and a router"',
      'LAB_DESCRIPTION="pc1 and pc2 talk through r1"',
      'LAB_AUTHOR="A. Teacher"',
      "# the router",
      'r1[0]="A"',
      'r1[1]="B"',
      'r1[image]="kathara/frr"',
      'r1[sysctl]="net.ipv4.ip_forward=1"',
      "pc1[0]=A",
      'pc1[mem]="128m"',
      'pc2[0]="B/02:42:ac:11:00:02"',
      'pc2[bridged]="true"',
    ].join("\n"),
    "r1.startup": "ifconfig eth0 10.0.1.1/24 up\nip addr add 10.0.2.1/24 dev eth1\nip link set eth1 up\n/etc/init.d/frr start\n",
    "pc1.startup": "ifconfig eth0 10.0.1.10 netmask 255.255.255.0 up\nroute add default gw 10.0.1.1\n",
    "pc2.startup": 'ip addr add 10.0.2.20/24 dev eth0\nip route add default via 10.0.2.1 dev eth0\necho "pc2 up" > /tmp/ready\n',
    "pc2/etc/motd": "welcome to pc2\n",
    "lab.dep": "pc1: r1\n",
  };

  it("a Kathará lab: three machines, two collision domains; addresses, routes and forwarding from the startup files", () => {
    const { lab, notes } = importKathara(KATHARA);
    expect(lab).toEqual({
      version: 1,
      title: "Two LANs and a router",
      description: "pc1 and pc2 talk through r1\n\nAuthor: A. Teacher",
      networks: [
        // every card has an address: no DHCP; the gateway takes the highest free address
        { name: "A", subnet: "10.0.1.0/24", gateway: { address: "10.0.1.254", dhcp: false } },
        { name: "B", subnet: "10.0.2.0/24", gateway: { address: "10.0.2.254", dhcp: false } },
      ],
      vms: [
        {
          name: "r1", cards: [{ network: "A", address: "10.0.1.1" }, { network: "B", address: "10.0.2.1" }], forwarding: true,
          setup: { commands: ["/etc/init.d/frr start"] },
        },
        { name: "pc1", memoryMiB: 128, cards: [{ network: "A", address: "10.0.1.10" }], routes: [{ to: "default", via: "10.0.1.1" }] },
        {
          name: "pc2", cards: [{ network: "B", address: "10.0.2.20" }], routes: [{ to: "default", via: "10.0.2.1" }],
          setup: { files: [{ path: "/etc/motd", content: "welcome to pc2\n" }], commands: ['echo "pc2 up" > /tmp/ready'] },
        },
      ],
    });
    expect(notes).toEqual([
      "pc2: eth0's MAC 02:42:ac:11:00:02 left out (cards get their own)",
      "r1: image kathara/frr left out (it runs the busybox image)",
      "pc2: option bridged=true left out",
      "lab.dep left out (machines start together, not in an order)",
      "startup commands kept to run at first boot: r1 (1), pc2 (1); they run in the busybox image, where programs it lacks fail",
    ]);
    expect(errorsOf(validateLab(lab))).toEqual([]);
    expect(schemaErrors(lab)).toEqual([]);
    // and it builds: pc1's default route rides on its command line, r1's second card is set up in the guest
    const ops = planLab(normalizeLab(lab));
    expect(ops).toContainEqual(expect.objectContaining({ kind: "create-vm", vm: "pc1", spec: expect.objectContaining({ bootArgs: "tabvisor.ip=10.0.1.10/24 tabvisor.gw=10.0.1.1 tabvisor.dns=10.0.1.254" }) }));
    expect(ops).toContainEqual(expect.objectContaining({ kind: "exec", vm: "r1", command: "ip link set eth1 up && ip addr add 10.0.2.1/24 dev eth1" }));
  });

  it("Kathará: shared.startup and the shared folder, odd names, gaps in interface numbers, addresses that do not fit", () => {
    const { lab, notes } = importKathara({
      "lab.conf": "PC_1[0]=lan\nPC_1[2]=lan_2\npc2[0]=lan\npc2[cpus]=0.5\npc2[mem]=8g\n",
      "shared.startup": "echo shared > /tmp/s\n",
      "shared/hello.txt": "hi\n",
      "PC_1.startup": "ifconfig eth0 10.1.0.5/16 up\nifconfig eth2 10.9.9.9/24 up\n",
      "pc2.startup": "ifconfig eth0 10.1.0.5/16 up\nip addr add 10.3.0.1/24 dev eth3\nroute add -net 10.2.0.0 netmask 255.255.0.0 gw 10.1.0.1\n",
    });
    expect(lab.networks).toEqual([
      // a /16's DHCP range would be all of it: the longest run clear of the static address and the gateway instead
      { name: "lan", subnet: "10.1.0.0/16", gateway: { address: "10.1.255.254", dhcpRange: { first: "10.1.0.6", last: "10.1.255.253" } } },
      { name: "lan_2", subnet: "10.9.9.0/24", gateway: { address: "10.9.9.254", dhcp: false } },
    ]);
    expect(lab.vms).toEqual([
      {
        // PC_1's eth2 is its second card, eth1: the address given to eth2 goes with it
        name: "pc-1", cards: [{ network: "lan", address: "10.1.0.5" }, { network: "lan_2", address: "10.9.9.9" }],
        setup: { files: [{ path: "/shared/hello.txt", content: "hi\n" }], commands: ["echo shared > /tmp/s"] },
      },
      {
        // the same address twice on one network: the second card takes DHCP and its line is kept; so is the line for
        // an interface pc2 does not have. Its route's next hop is on its network all the same.
        name: "pc2", cards: [{ network: "lan" }], memoryMiB: 2048, cpuCap: 50, routes: [{ to: "10.2.0.0/16", via: "10.1.0.1" }],
        setup: {
          files: [{ path: "/shared/hello.txt", content: "hi\n" }],
          commands: ["ifconfig eth0 10.1.0.5/16 up", "ip addr add 10.3.0.1/24 dev eth3", "echo shared > /tmp/s"],
        },
      },
    ]);
    expect(notes).toEqual([
      "PC_1: its interfaces eth0, eth2 are numbered with gaps; they become eth0, eth1 (their addresses go along; other startup commands may name the old ones)",
      "pc2: mem=8g is 2048 MiB (a VM has 32 to 2048)",
      'machine "PC_1" is VM "pc-1" (a VM\'s name is its host name: lower-case letters, digits and dashes)',
      'pc2: eth0\'s address 10.1.0.5/16 does not fit network "lan" (10.1.0.0/16, where another machine has it): the card takes DHCP and the line is kept as a command',
      "pc2: eth3 has an address but is on no network (the line is kept as a command)",
      "startup commands kept to run at first boot: pc-1 (1), pc2 (3); they run in the busybox image, where programs it lacks fail",
    ]);
  });

  it("Kathará: a collision domain nobody addresses gets a spare subnet with DHCP; no lab.conf is an error", () => {
    const { lab, notes } = importKathara({ "lab.conf": "a[0]=x\nb[0]=x\n" });
    expect(lab.networks).toEqual([{ name: "x", subnet: "10.250.0.0/24", gateway: { address: "10.250.0.254" } }]);
    expect(lab.vms).toEqual([{ name: "a", cards: [{ network: "x" }] }, { name: "b", cards: [{ network: "x" }] }]);
    expect(notes).toEqual(['network "x": no machine gives itself an address on it, so it is 10.250.0.0/24 with DHCP']);
    expect(() => importKathara({ "a.startup": "" })).toThrow("a Kathará lab needs its lab.conf");
  });
});

describe("importing a containerlab topology", () => {
  const CLAB = [
    "# a router between two clients",
    "name: srl-clients",
    "mgmt:",
    "  network: clab-mgmt",
    "  ipv4-subnet: 172.20.20.0/24",
    "topology:",
    "  kinds:",
    "    nokia_srlinux:",
    "      image: ghcr.io/nokia/srlinux",
    "  nodes:",
    "    r1:",
    "      kind: nokia_srlinux",
    "      mgmt-ipv4: 172.20.20.2",
    "    client1:",
    "      kind: linux",
    "      image: alpine:3.19",
    "      exec:",
    "        - ip addr add 192.168.1.10/24 dev eth1",
    "        - ip route add 192.168.2.0/24 via 192.168.1.1",
    "        - touch /tmp/ready  # a comment",
    "    client2:",
    "      kind: linux",
    '      image: "alpine:3.19"   # the same',
    "      binds:",
    "        - ./configs:/configs",
    "      exec: [\"ip addr add 192.168.2.10/24 dev eth1\", 'ip route replace default via 192.168.2.1']",
    "    sw:",
    "      kind: bridge",
    "  links:",
    '    - endpoints: ["r1:e1-1", "client1:eth1"]',
    "    - endpoints:",
    "        - node: r1",
    "          interface: e1-2",
    "        - node: sw",
    "          interface: eth1",
    "    - endpoints: [client2:eth1, sw:eth2]",
    '    - endpoints: ["client1:eth2", "host:veth-c1"]',
  ].join("\n");

  it("nodes become VMs on the management network, links networks of their ends, a bridge one network", () => {
    const { lab, notes } = importContainerlab(CLAB);
    expect(lab).toEqual({
      version: 1,
      title: "srl-clients",
      networks: [
        { name: "mgmt", subnet: "172.20.20.0/24", gateway: { address: "172.20.20.254" } },
        { name: "r1-client1", subnet: "192.168.1.0/24", gateway: { address: "192.168.1.254" } },
        { name: "sw", subnet: "192.168.2.0/24", gateway: { address: "192.168.2.254" } },
      ],
      vms: [
        { name: "r1", cards: [{ network: "mgmt", address: "172.20.20.2" }, { network: "r1-client1" }, { network: "sw" }] },
        {
          name: "client1", cards: [{ network: "mgmt" }, { network: "r1-client1", address: "192.168.1.10" }],
          routes: [{ to: "192.168.2.0/24", via: "192.168.1.1" }], setup: { commands: ["touch /tmp/ready"] },
        },
        { name: "client2", cards: [{ network: "mgmt" }, { network: "sw", address: "192.168.2.10" }], routes: [{ to: "default", via: "192.168.2.1" }] },
      ],
    });
    expect(notes).toEqual([
      "topology.kinds left out (settings per kind are not read)",
      "mgmt.network left out",
      "r1: kind nokia_srlinux left out (a busybox VM stands in; its configuration is not carried over)",
      "client1: image alpine:3.19 left out (it runs the busybox image)",
      "client2: image alpine:3.19 left out (it runs the busybox image)",
      "client2: binds left out",
      "links[3] to host:veth-c1 left out (outside the lab)",
      "r1: interfaces e1-1 is eth1, e1-2 is eth2 (cards are eth0, eth1, ... in order; addresses given to them go along; other commands naming them may need changing)",
      "startup commands kept to run at first boot: client1 (1); they run in the busybox image, where programs it lacks fail",
    ]);
    expect(schemaErrors(lab)).toEqual([]);
    const ops = planLab(normalizeLab(lab));
    expect(ops.filter((o) => o.kind === "create-network").map((o) => o.kind === "create-network" && o.config.name)).toEqual(["mgmt", "r1-client1", "sw"]);
    expect(ops).toContainEqual({ kind: "exec", vm: "client2", command: "ip link set eth1 up && ip addr add 192.168.2.10/24 dev eth1", timeoutMs: 15_000, purpose: "network" });
    expect(ops).toContainEqual({ kind: "exec", vm: "client2", command: "ip route replace default via 192.168.2.1", timeoutMs: 15_000, purpose: "network" });
  });

  it("a topology that is not one, or not YAML this reader takes, is refused saying why", () => {
    expect(() => importContainerlab("name: x\n")).toThrow("a containerlab topology needs topology.nodes");
    expect(() => importContainerlab("topology:\n  nodes:\n    a: &anchor\n      kind: linux\n")).toThrow(
      "the topology is not YAML this importer reads (line 3: anchors, aliases and tags are not read)");
    expect(() => importContainerlab("topology:\n  nodes:\n    a:\n      kind: linux\n     oops: 1\n")).toThrow(
      "the topology is not YAML this importer reads (line 5: this line's indentation does not fit the lines before it)");
    expect(() => importContainerlab("topology:\n  nodes: {}\n  nodes: {}\n")).toThrow(
      'the topology is not YAML this importer reads (line 3: the key "nodes" is given twice)');
  });
});

describe("the YAML subset reader", () => {
  it("reads what topologies use", () => {
    expect(parseYaml([
      "---",
      "a: 1",
      "b: true",
      "c: ~",
      "d: 'it''s'",
      'e: "tab\\there # not a comment"',
      "f: plain text # a comment",
      "g: [1, two, 'three', {x: y, z: [1]}]",
      "h:",
      "- first",
      "- k: v",
      "  l: w",
      "-",
      "  - nested",
      "i: |",
      "  line one",
      "    indented",
      "",
      "  line three",
      "j: >-",
      "  folded",
      "  together",
      "k: {node: srl1, interface: e1-1}",
      "l: [a,",
      "    b]",
      "m: http://x:8080/y",
    ].join("\n"))).toEqual({
      a: 1, b: true, c: null, d: "it's", e: "tab\there # not a comment", f: "plain text",
      g: [1, "two", "three", { x: "y", z: [1] }],
      h: ["first", { k: "v", l: "w" }, ["nested"]],
      i: "line one\n  indented\n\nline three\n",
      j: "folded together",
      k: { node: "srl1", interface: "e1-1" },
      l: ["a", "b"],
      m: "http://x:8080/y",
    });
  });
});

describe("startup commands", () => {
  it("addresses, routes and forwarding are read; anything else, or anything compound, is left as a command", () => {
    const p = parseStartup([
      "#!/bin/sh",
      "ifconfig eth0 192.168.0.1 up",
      "ifconfig eth1 172.16.0.1 netmask 255.255.0.0 broadcast 172.16.255.255 up",
      "ip address add 10.0.0.1/30 brd + dev eth2",
      "ip a add 10.0.9.1/24 dev eth2",
      "ip link set dev eth0 up",
      "ifconfig eth1 up",
      "route add -net 10.10.0.0/16 gw 10.0.0.2 dev eth2",
      "ip r add default via 192.168.0.254",
      "sysctl -w net.ipv4.ip_forward=1",
      "ip addr add 10.0.0.5/24 dev eth3 && echo done",
      "ip route add 10.20.0.0/16 via 10.0.0.2 metric 5",
      "service apache2 start",
      "echo a \\",
      "  b",
    ]);
    expect([...p.addresses].map(([dev, a]) => [dev, a.ip, a.prefix])).toEqual([
      ["eth0", "192.168.0.1", 24], ["eth1", "172.16.0.1", 16], ["eth2", "10.0.0.1", 30],
    ]);
    expect(p.routes.map(({ to, via }) => ({ to, via }))).toEqual([{ to: "10.10.0.0/16", via: "10.0.0.2" }, { to: "default", via: "192.168.0.254" }]);
    expect(p.forwarding).toBe(true);
    expect(p.dropped).toEqual(["ip link set dev eth0 up", "ifconfig eth1 up"]);
    expect(p.commands).toEqual([
      "ip a add 10.0.9.1/24 dev eth2", // a second address for eth2
      "ip addr add 10.0.0.5/24 dev eth3 && echo done",
      "ip route add 10.20.0.0/16 via 10.0.0.2 metric 5",
      "service apache2 start",
      "echo a    b",
    ]);
  });
});

describe("a lab on a system image (Debian)", () => {
  const system = IMAGES.find((i) => (i as { system?: unknown }).system) as { id: string; system: { ramMiB: number; minRamMiB: number } } | undefined;

  it.runIf(!!system)("gets the image's memory by default, is held to its minimum, and its disk takes a device slot", () => {
    const lab = (vm: object): Lab => ({ version: 1, title: "d", networks: [{ name: "lan", subnet: "10.0.1.0/24" }], vms: [{ name: "deb", image: system!.id, cards: [{ network: "lan" }], ...vm }] });
    const r = validateLab(lab({}));
    expect(errorsOf(r)).toEqual([]);
    expect(r.ok && r.full.vms[0].memoryMiB).toBe(system!.system.ramMiB);
    expect(errorsOf(validateLab(lab({ memoryMiB: system!.system.minRamMiB - 1 })))).toEqual([
      `vms[0].memoryMiB: ${system!.system.minRamMiB - 1} is too little for image ${system!.id}: it needs at least ${system!.system.minRamMiB}`,
    ]);
    expect(errorsOf(validateLab(lab({ cards: Array.from({ length: 5 }, () => ({ network: "lan" })) })))).toEqual([
      "vms[0].cards: has 5 cards; a VM with a disk has room for at most 4 (the board has 8 device slots)",
    ]);
  });
});
