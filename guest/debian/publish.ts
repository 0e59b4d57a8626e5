// guest/debian/publish.ts BUILD_DIR [DEST] - publishes the Debian disk built by guest/debian/build.sh as chunks:
// the ext4 image cut into fixed chunks (256 KiB), each gzip-compressed and named by its sha256, chunks of zeros
// left out, and a manifest.json (emulator-core/src/machine/virtio/chunked-disk.ts reads both). DEST defaults to
// public/images/debian/ (git-ignored: the image is too large for git). Chunks no longer listed are removed.

import { createHash } from "node:crypto";
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { CHUNKED_DISK_FORMAT, chunkFileName, type ChunkedImageManifest } from "../../emulator-core/src/machine/virtio/chunked-disk.ts";

const CHUNK = 256 * 1024;
const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const build = resolve(process.argv[2] ?? join(process.env.TMPDIR ?? "/tmp", "tabvisor-debian-build"));
const dest = resolve(process.argv[3] ?? join(ROOT, "public/images/debian"));
const image = join(build, "debian.ext4");
if (!existsSync(image)) {
  console.error(`publish: ${image} does not exist: run guest/debian/build.sh first (npm run images:debian does both)`);
  process.exit(1);
}

const size = statSync(image).size;
mkdirSync(join(dest, "chunks"), { recursive: true });
const fd = openSync(image, "r");
const buf = Buffer.alloc(CHUNK);
const ZERO = Buffer.alloc(CHUNK);
const chunks: ChunkedImageManifest["chunks"] = [];
const keep = new Set<string>();
let stored = 0, zeros = 0, compressed = 0;
const t0 = performance.now();
for (let off = 0; off < size; off += CHUNK) {
  const n = Math.min(CHUNK, size - off);
  let got = 0;
  while (got < n) got += readSync(fd, buf, got, n - got, off + got);
  const data = buf.subarray(0, n);
  if (data.equals(ZERO.subarray(0, n))) { chunks.push(null); zeros++; continue; }
  // level 6: most of level 9's ratio at a fraction of its time; mtime 0 in the header (zlib writes none)
  const z = gzipSync(data, { level: 6 });
  const sha = createHash("sha256").update(z).digest("hex");
  const file = join(dest, "chunks", chunkFileName(sha));
  if (!keep.has(sha) && !existsSync(file)) {
    writeFileSync(file + ".tmp", z);
    renameSync(file + ".tmp", file);
  }
  keep.add(sha);
  chunks.push([z.length, sha]);
  stored++;
  compressed += z.length;
}
closeSync(fd);
let removed = 0;
for (const f of readdirSync(join(dest, "chunks"))) {
  if (!keep.has(f.replace(/\.gz$/, ""))) { unlinkSync(join(dest, "chunks", f)); removed++; }
}

const packages: Record<string, string> = {};
for (const line of readFileSync(join(build, "packages-installed.txt"), "utf8").split("\n")) {
  const [name, version] = line.trim().split(" ");
  if (name) packages[name] = version;
}
const info = JSON.parse(readFileSync(join(build, "build-info.json"), "utf8"));
const kernel = join(ROOT, "public/images/Image");
const manifest: ChunkedImageManifest = {
  format: CHUNKED_DISK_FORMAT,
  description: "Tabvisor Debian riscv64 system disk (ext4), chunked; boots with ../Image (see guest/debian/README.md)",
  reproduce: "npm run images:debian",
  size,
  chunkSize: CHUNK,
  compression: "gzip",
  // the kernel this disk was built and tested with (the project's, public/images/Image)
  kernel: { file: "../Image", sha256: createHash("sha256").update(readFileSync(kernel)).digest("hex") },
  cmdline: "console=ttyS0 root=/dev/vda rw rootwait",
  build: info,
  packages,
  chunks,
};
writeFileSync(join(dest, "manifest.json.tmp"), JSON.stringify(manifest, null, 1) + "\n");
renameSync(join(dest, "manifest.json.tmp"), join(dest, "manifest.json"));
const mb = (n: number) => (n / 1e6).toFixed(1) + " MB";
console.log(`publish: ${dest}: ${mb(size)} image, ${stored} chunks stored (${keep.size} distinct, ${mb(compressed)} compressed), ` +
  `${zeros} chunks of zeros left out, ${removed} stale chunk files removed, ${((performance.now() - t0) / 1000).toFixed(1)} s`);
