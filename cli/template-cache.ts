// The default VM's template (public/images/template-vm.snap), kept decoded for the next start.
//
// Opening the snapshot file means checking its CRC-32 (in JavaScript) and inflating its state (3 MB to 11 MB):
// about a third of `npx tabvisor vm`'s own time to the prompt. The first start opens the file as usual, with all
// its checks, and writes what it got to node_modules/.cache/tabvisor/: the state encoded again (codec.ts,
// uncompressed) and, beside it, the machine description from the file's header. Later starts read those back
// instead: a plain file read (on libuv's thread pool, so it goes on while the caller builds the board) and a
// decode. The cache is used only while the template file (size and time) and the codec's sources are those it
// was made from, so a new template or a change to the encoding is picked up on the next start. Without a
// writable cache directory every start opens the file.

import { accessSync, closeSync, constants, fstatSync, mkdirSync, openSync, read, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { validateSpec } from "../emulator-core/src/machine/description.ts";
import type { OpenedTemplate } from "../emulator-core/src/node/vm.ts";
import { openSnapshot } from "../emulator-core/src/snapshot/snapshot.ts";
import { decodeState, encodeState } from "../emulator-core/src/snapshot/codec.ts";

const CACHE = fileURLToPath(new URL("../node_modules/.cache/tabvisor/", import.meta.url));
/** what the encoded state depends on besides the template itself */
const CODEC_SOURCES = ["codec.ts", "state-value.ts"].map((f) => fileURLToPath(new URL(`../emulator-core/src/snapshot/${f}`, import.meta.url)));

/** What a cached state was made from, and the header's description and state size. */
interface Key { template: string; size: number; mtimeMs: number; codec: number[]; machine: unknown; stateBytes: number }

/** The template's and the codec's side of the key as they are now (throws when a file is missing). */
function sourcesNow(templatePath: string): Pick<Key, "template" | "size" | "mtimeMs" | "codec"> {
  const st = statSync(templatePath);
  return { template: templatePath, size: st.size, mtimeMs: st.mtimeMs, codec: CODEC_SOURCES.map((f) => statSync(f).mtimeMs) };
}

function sameSources(a: Key, b: ReturnType<typeof sourcesNow>): boolean {
  return a.template === b.template && a.size === b.size && a.mtimeMs === b.mtimeMs &&
    Array.isArray(a.codec) && a.codec.length === b.codec.length && a.codec.every((t, i) => t === b.codec[i]);
}

/** The whole of a file of `size` bytes (throws when it is not that size). The file is opened at once and the
 *  read handed to the thread pool in one call (a regular file gives all of it), so the caller's synchronous work
 *  that follows runs while the bytes come: a chain of asynchronous steps would each wait for that work first. */
function readExactly(path: string, size: number): Promise<Uint8Array> {
  const fd = openSync(path, "r");
  const readRest = (bytes: Uint8Array, at: number): Promise<Uint8Array> => new Promise((resolve, reject) => {
    read(fd, bytes, at, size - at, at, (e, n) => {
      if (e) reject(e);
      else if (n === 0) reject(new Error(`${path} ended early`));
      else if (at + n < size) resolve(readRest(bytes, at + n));
      else resolve(bytes);
    });
  });
  try {
    if (fstatSync(fd).size !== size) throw new Error(`${path} is not ${size} bytes`);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  // not zero-filled: filling 11 MB (and taking its pages) would be main-thread time; the read fills it
  return readRest(Buffer.allocUnsafe(size), 0).finally(() => closeSync(fd));
}

/** Where the decoded state of the template at `templatePath` is kept, and its key: named after the file and a
 *  hash of its whole path, so two templates of the same name do not take turns at one cache entry. */
export function templateCacheFiles(templatePath: string): { stateFile: string; keyFile: string } {
  let h = 0x811c9dc5; // FNV-1a
  for (let i = 0; i < templatePath.length; i++) h = Math.imul(h ^ templatePath.charCodeAt(i), 0x01000193);
  const name = `${basename(templatePath).replace(/\.snap$/, "")}-${(h >>> 0).toString(16).padStart(8, "0")}`;
  return { stateFile: join(CACHE, `${name}.state`), keyFile: join(CACHE, `${name}.state.json`) };
}

/**
 * The template at `templatePath`, opened (its description and state); undefined when there is no such file (or
 * it may not be read). Its state is being read when this returns, so the caller can build the board meanwhile.
 * The promise rejects with SnapshotError for a file that is not a sound snapshot.
 */
export function openTemplate(templatePath: string): Promise<OpenedTemplate> | undefined {
  try {
    accessSync(templatePath, constants.R_OK);
  } catch {
    return undefined;
  }
  const { stateFile, keyFile } = templateCacheFiles(templatePath);
  let key: Key | undefined;
  try {
    key = JSON.parse(readFileSync(keyFile, "utf8")) as Key;
    if (!sameSources(key, sourcesNow(templatePath)) || !Number.isSafeInteger(key.stateBytes)) key = undefined;
  } catch {
    key = undefined; // no cache yet, an unreadable one, or a codec source missing
  }
  if (!key) return fromFile(templatePath, stateFile, keyFile);
  const { machine, stateBytes } = key;
  let reading;
  try {
    reading = readExactly(stateFile, stateBytes);
  } catch {
    return fromFile(templatePath, stateFile, keyFile);
  }
  return reading
    .then((raw) => ({ spec: validateSpec(machine), state: decodeState(raw) }))
    // a cache that cannot be read or decoded is made again from the file
    .catch(() => fromFile(templatePath, stateFile, keyFile));
}

/** Opens the template file with all of openSnapshot's checks, and caches what it holds for the next start. */
async function fromFile(templatePath: string, stateFile: string, keyFile: string): Promise<OpenedTemplate> {
  // dated before the read: a template replaced meanwhile has another size or time, and misses next time
  let sources;
  try { sources = sourcesNow(templatePath); } catch { sources = undefined; }
  const opened = await openSnapshot(readFileSync(templatePath));
  if (!sources) return opened;
  try {
    const key: Key = { ...sources, machine: opened.header.machine, stateBytes: opened.header.stateBytes };
    mkdirSync(CACHE, { recursive: true });
    // each file is written under a temporary name and renamed, the state first: a start at the same moment reads
    // a whole file or none, and never a key naming a state that is not there yet
    for (const [path, contents] of [[stateFile, encodeState(opened.state)], [keyFile, JSON.stringify(key)]] as const) {
      const tmp = `${path}.${process.pid}.tmp`;
      try {
        writeFileSync(tmp, contents);
        renameSync(tmp, path);
      } catch (e) {
        try { unlinkSync(tmp); } catch { /* never written */ }
        throw e;
      }
    }
  } catch {
    // a read-only install: every start opens the file
  }
  return opened;
}
