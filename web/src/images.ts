// Fetches what a VM boots from: the compiled emulator core and the guest images listed in
// public/images/manifest.json, with progress and a sha256 check, and the template snapshot new VMs of its shape
// start from instead of booting (the manifest's `template` entry). Loaded once per page; every VM shares them.

import { openSnapshot } from "../../emulator-core/src/snapshot/snapshot.ts";
import type { MachineSpec } from "../../emulator-core/src/machine/description.ts";
import type { StateValue } from "../../emulator-core/src/snapshot/state-value.ts";
import { checkManifest, chunkedImageId, type ChunkedImageManifest } from "../../emulator-core/src/machine/virtio/chunked-disk.ts";
import { unpackInitrd } from "../../emulator-core/src/machine/linux-image.ts";

export interface GuestImages {
  kernel: Uint8Array;
  /** the initramfs as the guest gets it: unpacked here when the manifest's file is gzip (unpackInitrd) */
  initrd: Uint8Array;
}

/** The template snapshot, opened: the machine it was taken of and its state. It is opened once here (inflating
 *  it takes about 100 ms) and every VM's worker gets a copy of the state. */
export interface Template {
  spec: MachineSpec;
  state: StateValue;
}

export interface Guest {
  hart: WebAssembly.Module;
  images: GuestImages;
  /** absent when the manifest lists none, or it did not download intact (VMs then boot) */
  template?: Template;
  /** the Debian system disk, when it is built and served (else why not, and how to build it) */
  debian: SystemImage | { missing: string };
}

/** A system disk published in chunks (npm run images:debian → public/images/debian/): only its manifest is
 *  downloaded with the page; each VM's worker fetches the chunks its guest reads. */
export interface SystemImage {
  /** the folder (chunks/ lies under it) */
  url: string;
  manifest: ChunkedImageManifest;
  /** its name (chunkedImageId): the disks and snapshots of VMs on it say which image they are over */
  id: string;
  /** the kernel command line it boots with (the manifest's, else root=/dev/vda) */
  cmdline: string;
}

export const DEBIAN_BUILD = "Build it with `npm run images:debian` (about 15 minutes, as root on Debian), then reload.";

/** The Debian image's manifest, checked; what is missing or wrong when it cannot be used. Never throws. */
async function loadDebian(): Promise<SystemImage | { missing: string }> {
  const url = imageUrl("debian/");
  const manifestUrl = url + "manifest.json";
  try {
    const res = await fetch(manifestUrl, { cache: "no-cache" });
    // (a dev server answers a missing file with its index page: that is "not built" too)
    if (res.status === 404 || !/json/i.test(res.headers.get("Content-Type") ?? "")) return { missing: `The Debian image is not built. ${DEBIAN_BUILD}` };
    if (!res.ok) return { missing: `The Debian image's manifest could not be downloaded (${res.status} ${res.statusText}).`.trim() };
    const manifest = checkManifest(await res.json());
    return {
      url, manifest, id: await chunkedImageId(manifest),
      cmdline: typeof manifest.cmdline === "string" && /^[\x20-\x7e]{1,256}$/.test(manifest.cmdline) ? manifest.cmdline : "console=ttyS0 root=/dev/vda rw rootwait",
    };
  } catch (e) {
    return { missing: `The Debian image cannot be used: ${(e as Error).message}. ${DEBIAN_BUILD}` };
  }
}

export interface LoadProgress {
  loaded: number;
  total: number;
  /** what is downloading now */
  file: string;
}

interface Manifest {
  artefacts: Record<string, { size: number; sha256: string }>;
  template?: { file: string; size: number; sha256: string };
}

/** A download that failed, with what went wrong and how to fix it. */
export class DownloadError extends Error {
  constructor(readonly url: string, message: string, readonly fix: string) { super(message); }
}

const IMAGES_FIX = "The guest images are served from public/images/ (see public/images/manifest.json); `npm run images` rebuilds them. Check that the server is running and reload.";

// Relative to the page, so a static build also works under a sub-path.
const imageUrl = (name: string) => new URL(`images/${name}`, document.baseURI).href;
const HART_URL = new URL("../../emulator-core/build/hart.wasm", import.meta.url).href;

async function get(url: string): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new DownloadError(url, `could not download ${url}: the network request failed (${(e as Error).message})`, IMAGES_FIX);
  }
  if (!res.ok) {
    throw new DownloadError(url, `could not download ${url}: the server answered ${res.status} ${res.statusText}`.trim(), IMAGES_FIX);
  }
  return res;
}

async function readAll(url: string, res: Response, expected: number, onBytes: (n: number) => void): Promise<Uint8Array> {
  const out = new Uint8Array(expected);
  let at = 0;
  let grown: Uint8Array[] | undefined; // when the file is larger than the manifest says
  const reader = res.body?.getReader();
  if (!reader) {
    const all = new Uint8Array(await res.arrayBuffer());
    onBytes(all.length);
    return all;
  }
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (!grown && at + value.length <= out.length) out.set(value, at);
      else (grown ??= [out.subarray(0, at)]).push(value);
      at += value.length;
      onBytes(value.length);
    }
  } catch (e) {
    throw new DownloadError(url, `the download of ${url} broke off after ${at} bytes (${(e as Error).message})`, IMAGES_FIX);
  }
  if (grown) {
    const all = new Uint8Array(at);
    let o = 0;
    for (const g of grown) { all.set(g, o); o += g.length; }
    return all;
  }
  return out.subarray(0, at);
}

async function sha256Hex(bytes: Uint8Array): Promise<string | undefined> {
  if (!globalThis.crypto?.subtle) return undefined;
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function loadHart(): Promise<WebAssembly.Module> {
  const res = await get(HART_URL);
  const bytes = await res.arrayBuffer();
  try {
    return await WebAssembly.compile(bytes);
  } catch (e) {
    throw new DownloadError(HART_URL, `the emulator core ${HART_URL} does not compile: ${(e as Error).message}`,
      "Rebuild it with `npm run build:core` (npm start does this) and reload.");
  }
}

let cached: Promise<Guest> | undefined;

/** The emulator core, the guest images and the template (downloaded once; later calls share the first download). */
export function loadGuest(onProgress: (p: LoadProgress) => void = () => {}): Promise<Guest> {
  cached ??= (async () => {
    const manifestUrl = imageUrl("manifest.json");
    const manifest = (await (await get(manifestUrl)).json().catch(() => {
      throw new DownloadError(manifestUrl, `${manifestUrl} is not valid JSON`, IMAGES_FIX);
    })) as Manifest;
    const names = ["Image", "initramfs.cpio.gz"];
    for (const n of names) {
      if (!manifest.artefacts?.[n]) throw new DownloadError(manifestUrl, `${manifestUrl} does not list ${n}`, IMAGES_FIX);
    }
    const t = manifest.template;
    const templateEntry = t && typeof t.file === "string" && /^[\w.-]+$/.test(t.file) && Number.isSafeInteger(t.size) ? t : undefined;
    const total = names.reduce((s, n) => s + manifest.artefacts[n].size, 0) + (templateEntry?.size ?? 0);
    let loaded = 0;
    const hart = loadHart();
    const debian = loadDebian();
    /** Downloads a file of the manifest with progress, and checks its size and sha256 (unless the server sent a .gz
     *  file unpacked: then neither can be checked). Throws saying what is wrong. */
    const download = async (name: string, size: number, sha256: string): Promise<Uint8Array> => {
      const url = imageUrl(name);
      onProgress({ loaded, total, file: name });
      const start = loaded;
      const res = await get(url);
      // A host that labels a .gz file "Content-Encoding: gzip" makes the browser unpack it: the bytes are then
      // a plain cpio archive (which Linux boots from just as well), no longer the file the manifest describes.
      const unpacked = name.endsWith(".gz") && /gzip|br|deflate/i.test(res.headers.get("Content-Encoding") ?? "");
      const bytes = await readAll(url, res, size, (k) => {
        loaded = Math.min(start + size, loaded + k);
        onProgress({ loaded, total, file: name });
      });
      loaded = start + size;
      if (unpacked) {
        console.warn(`${url} arrived unpacked (the server sent Content-Encoding: ${res.headers.get("Content-Encoding")}); its size and sha256 are not checked`);
        return bytes;
      }
      if (bytes.length !== size) throw new Error(`${url} has ${bytes.length} bytes, but the manifest says ${size}`);
      const digest = await sha256Hex(bytes);
      if (digest !== undefined && digest !== sha256) throw new Error(`${url} is corrupt: its sha256 is ${digest}, the manifest says ${sha256}`);
      return bytes;
    };
    const files: Uint8Array[] = [];
    for (const n of names) {
      const { size, sha256 } = manifest.artefacts[n];
      try {
        files.push(await download(n, size, sha256));
      } catch (e) {
        if (e instanceof DownloadError) throw e;
        throw new DownloadError(imageUrl(n), (e as Error).message, IMAGES_FIX);
      }
    }
    // The template only saves boot time: one that is missing or damaged is reported and VMs boot instead.
    let template: Template | undefined;
    if (templateEntry) {
      try {
        const { spec, state } = await openSnapshot(await download(templateEntry.file, templateEntry.size, templateEntry.sha256));
        template = { spec, state };
      } catch (e) {
        console.warn(`the template snapshot ${imageUrl(templateEntry.file)} is not usable (${(e as Error).message}): new VMs boot instead`);
      }
    }
    // (after the sha256 check, which is of the file as published)
    const initrd = await unpackInitrd(files[1]);
    return { hart: await hart, images: { kernel: files[0], initrd }, template, debian: await debian };
  })();
  cached.catch(() => { cached = undefined; }); // a failed download may be retried
  return cached;
}
