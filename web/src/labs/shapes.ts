// The fields each object of the lab format may have and must have. The validator refuses any other field, and
// lab.schema.json lists the same ones (its $defs carry these names; a test holds the two together), so the schema
// an editor uses and the page that opens the file never disagree about what a field is.

export interface Shape {
  required: readonly string[];
  optional: readonly string[];
}

export const SHAPES = {
  lab: { required: ["version", "title", "networks", "vms"], optional: ["description", "steps"] },
  network: { required: ["name", "subnet"], optional: ["gateway", "domain"] },
  gateway: { required: [], optional: ["address", "dhcp", "dns", "dhcpRange"] },
  dhcpRange: { required: ["first", "last"], optional: [] },
  vm: {
    required: ["name", "cards"],
    optional: ["image", "memoryMiB", "cpuCap", "cpuWeight", "balloonMiB", "diskMiB", "jit", "forwarding", "routes", "setup"],
  },
  card: { required: ["network"], optional: ["address"] },
  route: { required: ["to", "via"], optional: [] },
  setup: { required: [], optional: ["files", "commands"] },
  file: { required: ["path", "content"], optional: ["mode", "encoding"] },
  step: { required: ["text"], optional: ["title", "snippets", "checks"] },
  snippet: { required: ["vm", "command"], optional: ["label"] },
  check: { required: ["title", "vm", "command"], optional: ["timeoutSeconds", "pass", "hint"] },
  pass: { required: [], optional: ["exit", "stdout"] },
} as const satisfies Record<string, Shape>;

export type ShapeName = keyof typeof SHAPES;

/** Sizes the format allows (the schema repeats them; the test compares). */
export const LIMITS = {
  titleChars: 120,
  descriptionChars: 20_000,
  textChars: 20_000,
  commandChars: 4096,
  labelChars: 120,
  networks: 16,
  vms: 32,
  steps: 100,
  itemsPerStep: 20,
  routes: 16,
  files: 64,
  commands: 64,
  /** bytes of one file's contents once decoded */
  fileBytes: 256 * 1024,
  pathChars: 1024,
  domainChars: 63,
  checkTimeoutSeconds: 300,
  diskMiB: 1024,
  cpuWeight: 10_000,
} as const;
