// The committed guest initramfs (public/images/initramfs.cpio.gz) is what `npm run images` (guest/build.sh) makes
// from this checkout: the manifest describes it, every entry carries the fixed time 0 and root ownership (nothing of
// the host or of the time of the git checkout), and the files under guest/rootfs are in it as they are in the tree.
// A checkout time in the archive was issue 12's defect 8: a fresh clone did not reproduce the committed bytes.

import { describe, it, expect } from "vitest";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { createHash } from "node:crypto";
import { gunzipSync } from "node:zlib";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const IMAGES = join(ROOT, "public", "images");
const ROOTFS = join(ROOT, "guest", "rootfs");

interface CpioEntry { name: string; mode: number; uid: number; gid: number; mtime: number; data: Uint8Array }

/** The entries of a "newc" cpio archive (what gen_init_cpio writes), up to its trailer. */
function readNewc(buf: Uint8Array): CpioEntry[] {
  const text = (o: number, n: number) => Buffer.from(buf.subarray(o, o + n)).toString("latin1");
  const hex = (o: number) => parseInt(text(o, 8), 16);
  const pad4 = (n: number) => (n + 3) & ~3;
  const out: CpioEntry[] = [];
  for (let at = 0; ;) {
    expect(text(at, 6)).toBe("070701");
    const mode = hex(at + 14), uid = hex(at + 22), gid = hex(at + 30), mtime = hex(at + 46);
    const size = hex(at + 54), nameSize = hex(at + 94);
    const name = text(at + 110, nameSize - 1);
    const dataAt = pad4(at + 110 + nameSize);
    if (name === "TRAILER!!!") return out;
    out.push({ name, mode, uid, gid, mtime, data: buf.subarray(dataAt, dataAt + size) });
    at = pad4(dataAt + size);
  }
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

describe("the committed guest initramfs", () => {
  const gz = readFileSync(join(IMAGES, "initramfs.cpio.gz"));
  const manifest = JSON.parse(readFileSync(join(IMAGES, "manifest.json"), "utf8"));
  const entries = readNewc(gunzipSync(gz));

  it("is the one its manifest describes", () => {
    expect(gz.length).toBe(manifest.artefacts["initramfs.cpio.gz"].size);
    expect(createHash("sha256").update(gz).digest("hex")).toBe(manifest.artefacts["initramfs.cpio.gz"].sha256);
  });

  it("carries no time and no owner of the machine or checkout it was built on", () => {
    expect(entries.length).toBeGreaterThan(100); // busybox and its applet links
    // the gzip header too: no name, no time (gzip -n)
    expect(gz.readUInt32LE(4)).toBe(0);
    expect(gz[3] & 0x08).toBe(0);
    const stamped = entries.filter((e) => e.mtime !== 0).map((e) => `${e.name} (mtime ${e.mtime})`);
    expect(stamped).toEqual([]);
    expect(entries.filter((e) => e.uid !== 0 || e.gid !== 0).map((e) => e.name)).toEqual([]);
  });

  it("holds the files under guest/rootfs as they are in the tree, with the modes build.sh gives them", () => {
    const byName = new Map(entries.map((e) => [e.name, e]));
    const files = filesUnder(ROOTFS);
    expect(files.length).toBeGreaterThan(0);
    for (const path of files) {
      const name = relative(ROOTFS, path).split("\\").join("/");
      const e = byName.get(name);
      expect(e, `${name} is missing from the initramfs (rebuild: INITRAMFS_ONLY=1 npm run images)`).toBeDefined();
      expect(Buffer.from(e!.data).equals(readFileSync(path)), `${name} differs from guest/rootfs (rebuild the images)`).toBe(true);
      const perm = name === "etc/shadow" ? 0o600 : (statSync(path).mode & 0o100) ? 0o755 : 0o644;
      expect((e!.mode & 0o7777).toString(8), name).toBe(perm.toString(8));
    }
  });

  it("holds the control channel's agent, the static riscv64 binary the manifest describes", () => {
    const e = entries.find((x) => x.name === "sbin/tabvisor-agent");
    expect(e, "sbin/tabvisor-agent is missing (rebuild: INITRAMFS_ONLY=1 npm run images)").toBeDefined();
    expect(createHash("sha256").update(e!.data).digest("hex")).toBe(manifest.agent.sha256);
    expect((e!.mode & 0o7777).toString(8)).toBe("755");
    const elf = Buffer.from(e!.data);
    expect(elf.subarray(0, 4).toString("latin1")).toBe("\x7fELF");
    expect(elf.readUInt16LE(18)).toBe(243); // e_machine: RISC-V
    expect(elf.readUInt16LE(16)).toBe(2); // ET_EXEC: static, no interpreter to find in another userland
  });
});

describe("the committed guest kernel", () => {
  const manifest = JSON.parse(readFileSync(join(IMAGES, "manifest.json"), "utf8"));

  it("is the Image its manifest describes, built from this checkout's kernel.defconfig and kernel-edits.sh", () => {
    const image = readFileSync(join(IMAGES, "Image"));
    expect(image.length).toBe(manifest.artefacts.Image.size);
    expect(createHash("sha256").update(image).digest("hex")).toBe(manifest.artefacts.Image.sha256);
    const sha = (f: string) => createHash("sha256").update(readFileSync(join(ROOT, "guest", f))).digest("hex");
    expect(manifest.kernel.defconfig_sha256, "guest/kernel.defconfig changed: rebuild the images (npm run images)").toBe(sha("kernel.defconfig"));
    expect(manifest.kernel.edits_sha256, "guest/kernel-edits.sh changed: rebuild the images (npm run images)").toBe(sha("kernel-edits.sh"));
  });
});
