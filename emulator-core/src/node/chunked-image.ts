// A chunked disk image (machine/virtio/chunked-disk.ts) in Node: the chunks come from a directory (what
// guest/debian/publish.ts wrote: manifest.json and chunks/<sha256>.gz), read the first time the guest needs them.

import { existsSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ChunkedDisk, checkManifest, type ChunkSource, type ChunkedImageManifest } from "../machine/virtio/chunked-disk.ts";

/** Where `npm run images:debian` publishes the Debian disk. */
export const DEBIAN_IMAGE_DIR = fileURLToPath(new URL("../../../public/images/debian/", import.meta.url));
/** What to tell someone whose Debian image is not built. */
export const DEBIAN_BUILD_HINT = "build it with `npm run images:debian` (as root on Debian; about 10-20 minutes, see guest/debian/README.md)";

/** Reads chunks/<name> from a published directory. */
export class DirectoryChunkSource implements ChunkSource {
  /** chunk files read (each read is a "fetch": the disk keeps what it read) */
  reads = 0;
  constructor(readonly dir: string) {}
  async fetch(name: string): Promise<Uint8Array> {
    // names come from the checked manifest (hex + .gz): no path can leave the directory
    if (!/^[0-9a-f]{64}\.gz$/.test(name)) throw new Error(`bad chunk name ${name}`);
    this.reads++;
    return new Uint8Array(await readFile(join(this.dir, "chunks", name)));
  }
}

/** The manifest of a published image directory, checked; undefined when the directory has none (not built). */
export function readChunkedManifest(dir: string): ChunkedImageManifest | undefined {
  const file = join(dir, "manifest.json");
  if (!existsSync(file)) return undefined;
  return checkManifest(JSON.parse(readFileSync(file, "utf8")));
}

/** A disk over a published directory, with a fresh copy-on-write overlay in memory. */
export function openChunkedImage(dir: string, opts: { readOnly?: boolean } = {}): { disk: ChunkedDisk; source: DirectoryChunkSource; manifest: ChunkedImageManifest } {
  const manifest = readChunkedManifest(dir);
  if (!manifest) throw new Error(`no chunked disk image in ${dir} (manifest.json missing): ${DEBIAN_BUILD_HINT}`);
  const source = new DirectoryChunkSource(dir);
  return { disk: new ChunkedDisk(manifest, source, opts), source, manifest };
}
