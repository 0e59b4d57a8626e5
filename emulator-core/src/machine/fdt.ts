// A flattened device tree (DTB) writer, and the device tree of a Tabvisor machine.

type PropValue = string | string[] | number[] | bigint[] | Uint8Array | null;

export interface FdtNode {
  name: string;
  props: [string, PropValue][];
  children: FdtNode[];
}

export const node = (name: string, props: [string, PropValue][], children: FdtNode[] = []): FdtNode =>
  ({ name, props, children });
/** A cell array value (u32 cells). */
export const cells = (...v: number[]): number[] => v;
/** A 64-bit address or size as two cells. */
export const u64cells = (v: bigint): number[] => [Number(v >> 32n), Number(v & 0xffffffffn)];

const FDT_MAGIC = 0xd00dfeed;
const FDT_BEGIN_NODE = 1;
const FDT_END_NODE = 2;
const FDT_PROP = 3;
const FDT_END = 9;

function encodeValue(v: PropValue): Uint8Array {
  if (v === null) return new Uint8Array(0);
  if (v instanceof Uint8Array) return v;
  if (typeof v === "string") return new TextEncoder().encode(v + "\0");
  if (v.length > 0 && typeof v[0] === "string") return new TextEncoder().encode((v as string[]).join("\0") + "\0");
  if (v.length > 0 && typeof v[0] === "bigint") {
    const out = new Uint8Array(v.length * 8);
    const dv = new DataView(out.buffer);
    (v as bigint[]).forEach((x, i) => dv.setBigUint64(i * 8, x));
    return out;
  }
  const out = new Uint8Array(v.length * 4);
  const dv = new DataView(out.buffer);
  (v as number[]).forEach((x, i) => dv.setUint32(i * 4, x >>> 0));
  return out;
}

/** Serialises a tree to DTB (version 17). */
export function buildDtb(root: FdtNode, bootCpu = 0): Uint8Array {
  const struct: number[] = [];
  const strings: number[] = [];
  const stringOffsets = new Map<string, number>();
  const u32 = (v: number) => struct.push((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
  const pad = () => { while (struct.length % 4) struct.push(0); };
  const stringOff = (s: string) => {
    let off = stringOffsets.get(s);
    if (off === undefined) {
      off = strings.length;
      stringOffsets.set(s, off);
      for (const b of new TextEncoder().encode(s)) strings.push(b);
      strings.push(0);
    }
    return off;
  };
  const emit = (n: FdtNode) => {
    u32(FDT_BEGIN_NODE);
    for (const b of new TextEncoder().encode(n.name)) struct.push(b);
    struct.push(0);
    pad();
    for (const [name, value] of n.props) {
      const bytes = encodeValue(value);
      u32(FDT_PROP);
      u32(bytes.length);
      u32(stringOff(name));
      for (const b of bytes) struct.push(b);
      pad();
    }
    for (const c of n.children) emit(c);
    u32(FDT_END_NODE);
  };
  emit(root);
  u32(FDT_END);

  const headerSize = 40;
  const rsvmapOff = headerSize;
  const rsvmapSize = 16; // one terminating empty entry
  const structOff = rsvmapOff + rsvmapSize;
  const stringsOff = structOff + struct.length;
  const total = stringsOff + strings.length;
  const out = new Uint8Array(Math.ceil(total / 8) * 8);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, FDT_MAGIC);
  dv.setUint32(4, out.length);
  dv.setUint32(8, structOff);
  dv.setUint32(12, stringsOff);
  dv.setUint32(16, rsvmapOff);
  dv.setUint32(20, 17);
  dv.setUint32(24, 16);
  dv.setUint32(28, bootCpu);
  dv.setUint32(32, strings.length);
  dv.setUint32(36, struct.length);
  out.set(struct, structOff);
  out.set(strings, stringsOff);
  return out;
}
