// A containerlab topology (its .clab.yml) as a Tabvisor lab. Each link becomes a network of its two ends; a bridge
// node (kind bridge or ovs-bridge) becomes one network of everything linked to it. Every node keeps containerlab's
// management network as its eth0 (a network "mgmt" with DHCP, mgmt-ipv4 as a static address), so the data
// interfaces keep their names (eth1, eth2, ...) and the exec commands that name them still fit; interfaces named
// otherwise (e1-1, Ethernet1) follow in the order met. Exec commands give addresses, routes and forwarding as in a
// startup file. Kinds, images, binds, ports, startup configurations and the like are left out with a note.

import { parseYaml, YamlError, type YamlValue } from "./yaml.ts";
import { ImportError, labFromTopology, type ImportResult, type ImportedMachine } from "./topology.ts";
import { parseIpv4, parseSubnet } from "./ipv4.ts";

const MGMT = "mgmt";
const MGMT_SUBNET = "172.20.20.0/24"; // containerlab's default
const BRIDGE_KINDS = new Set(["bridge", "ovs-bridge"]);
/** endpoints that are not nodes of the lab: the host, its management network, macvlan and the like */
const OUTSIDE = new Set(["host", "mgmt-net", "macvlan", "vxlan", "vxlan-stitch", "dummy"]);
/** node fields that are read */
const READ = new Set(["kind", "image", "exec", "mgmt-ipv4", "memory", "cpu"]);

type Map_ = { [key: string]: YamlValue };

export function importContainerlab(yaml: string): ImportResult {
  let doc: YamlValue;
  try {
    doc = parseYaml(yaml);
  } catch (e) {
    if (e instanceof YamlError) throw new ImportError(`the topology is not YAML this importer reads (${e.message})`);
    throw e;
  }
  if (!isMap(doc) || !isMap(doc.topology) || !isMap(doc.topology.nodes)) throw new ImportError("a containerlab topology needs topology.nodes");
  const notes: string[] = [];
  const topo = doc.topology;
  const nodeMap: Map_ = doc.topology.nodes;
  for (const key of Object.keys(doc)) if (!["name", "topology", "mgmt", "prefix"].includes(key)) notes.push(`${key} left out`);
  for (const key of Object.keys(topo)) if (!["nodes", "links"].includes(key)) notes.push(`topology.${key} left out (${key === "kinds" || key === "defaults" ? "settings per kind are not read" : "not read"})`);

  const mgmt = isMap(doc.mgmt) ? doc.mgmt : {};
  const mgmtText = typeof mgmt["ipv4-subnet"] === "string" ? mgmt["ipv4-subnet"] : MGMT_SUBNET;
  const mgmtSubnet = parseSubnet(mgmtText).subnet && (parseSubnet(mgmtText).subnet!.prefix <= 30) ? mgmtText : MGMT_SUBNET;
  if (mgmtSubnet !== mgmtText) notes.push(`mgmt.ipv4-subnet ${mgmtText} not usable: the management network is ${MGMT_SUBNET}`);
  for (const key of Object.keys(mgmt)) if (key !== "ipv4-subnet") notes.push(`mgmt.${key} left out`);

  const nodes = new Map<string, ImportedMachine & { named: Map<string, string> }>();
  const bridges = new Set<string>();
  for (const [name, raw] of Object.entries(nodeMap)) {
    const node = isMap(raw) ? raw : {};
    const kind = str(node.kind) ?? "linux";
    if (BRIDGE_KINDS.has(kind)) { bridges.add(name); continue; }
    if (kind !== "linux") notes.push(`${name}: kind ${kind} left out (a busybox VM stands in; its configuration is not carried over)`);
    if (node.image !== undefined) notes.push(`${name}: image ${str(node.image) ?? "?"} left out (it runs the busybox image)`);
    for (const key of Object.keys(node)) if (!READ.has(key)) notes.push(`${name}: ${key} left out`);
    const exec = Array.isArray(node.exec) ? node.exec.map((x) => String(x)) : [];
    const m: ImportedMachine & { named: Map<string, string> } = { name, interfaces: [MGMT], startup: exec, named: new Map([["eth0", MGMT]]) };
    const ip = str(node["mgmt-ipv4"]);
    if (ip !== undefined) {
      if (parseIpv4(ip) !== undefined) m.addresses = new Map([["eth0", { ip, prefix: parseSubnet(mgmtSubnet).subnet!.prefix }]]);
      else notes.push(`${name}: mgmt-ipv4 ${ip} is not an IPv4 address, left out`);
    }
    if (node.memory !== undefined) notes.push(`${name}: memory ${String(node.memory)} left out (VMs get the lab's default)`);
    if (node.cpu !== undefined) notes.push(`${name}: cpu ${String(node.cpu)} left out`);
    nodes.set(name, m);
  }

  const links = Array.isArray(topo.links) ? topo.links : [];
  links.forEach((raw, k) => {
    const ends = endpointsOf(raw);
    if (!ends) { notes.push(`links[${k}] not understood, left out`); return; }
    const outside = ends.find((e) => OUTSIDE.has(e.node) || (!nodes.has(e.node) && !bridges.has(e.node)));
    if (outside) { notes.push(`links[${k}] to ${outside.node}:${outside.iface} left out (${OUTSIDE.has(outside.node) ? "outside the lab" : "no such node"})`); return; }
    const bridge = ends.find((e) => bridges.has(e.node));
    const net = bridge ? bridge.node : ends.map((e) => e.node).join("-");
    for (const e of ends) {
      if (bridges.has(e.node)) continue;
      const m = nodes.get(e.node)!;
      if (m.named.has(e.iface)) { notes.push(`links[${k}]: ${e.node}:${e.iface} is linked twice, left out`); continue; }
      m.named.set(e.iface, net);
    }
  });

  // interfaces in order: eth0 (management), ethN by number, then the rest as met
  for (const m of nodes.values()) {
    const eth = [...m.named.keys()].filter((n) => /^eth[0-9]+$/.test(n)).sort((a, b) => Number(a.slice(3)) - Number(b.slice(3)));
    const other = [...m.named.keys()].filter((n) => !/^eth[0-9]+$/.test(n));
    const order = [...eth, ...other];
    const renamed = order.map((n, i) => [n, `eth${i}`]).filter(([a, b]) => a !== b);
    if (renamed.length) notes.push(`${m.name}: interfaces ${renamed.map(([a, b]) => `${a} is ${b}`).join(", ")} (cards are eth0, eth1, ... in order; addresses given to them go along; other commands naming them may need changing)`);
    m.interfaces = order.map((n) => m.named.get(n)!);
    m.renamed = new Map(order.map((n, i) => [n, `eth${i}`]));
  }
  const title = typeof doc.name === "string" ? doc.name : "containerlab topology";
  return labFromTopology(title, "", [...nodes.values()].map(({ named: _, ...m }) => m), notes, new Map([[MGMT, mgmtSubnet]]));
}

/** A link's two (or more) ends, in either of containerlab's forms: endpoints: ["a:eth1", "b:eth1"], or
 *  endpoints: [{node: a, interface: eth1}, ...]. */
function endpointsOf(raw: YamlValue): { node: string; iface: string }[] | undefined {
  if (!isMap(raw) || !Array.isArray(raw.endpoints) || raw.endpoints.length < 2) return undefined;
  const out: { node: string; iface: string }[] = [];
  for (const e of raw.endpoints) {
    if (typeof e === "string" && /^[^:]+:[^:]+$/.test(e)) { const [node, iface] = e.split(":"); out.push({ node, iface }); }
    else if (isMap(e) && typeof e.node === "string" && typeof e.interface === "string") out.push({ node: e.node, iface: e.interface });
    else return undefined;
  }
  return out;
}

function isMap(v: YamlValue | undefined): v is Map_ {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function str(v: YamlValue | undefined): string | undefined {
  return typeof v === "string" ? v : typeof v === "number" ? String(v) : undefined;
}
