// Share links: the whole lab in the address's fragment (`#lab=v1.<data>`), which browsers never send to a server.
// <data> is the lab's JSON text, compressed (zlib: deflate plus an Adler-32 of the text, checked here since
// fflate does not), in base64url. The "v1" is the link encoding's version, the same number as the lab format's: a
// link of another version is refused, as a file of another version is.
//
// A link longer than LINK_MAX_CHARS is not made (labFitsLink says so first): the page offers the lab as a file
// instead. Links that long are cut by chat programs, mail clients and QR codes, and such a lab is better as a file.

import { strToU8, unzlibSync, zlibSync } from "fflate";
import { formatLabError, validateLab, type LabError } from "./validate.ts";
import { LAB_FORMAT_VERSION, type Lab } from "./types.ts";

/** The longest fragment (`#lab=v1.…`) a link may have, made or opened. */
export const LINK_MAX_CHARS = 8000;
/** The most a link's data may decompress to (a link cannot be a decompression bomb). */
export const LINK_MAX_JSON_BYTES = 1024 * 1024;

const PREFIX = "#lab=";

export class ShareLinkError extends Error {
  constructor(message: string, readonly errors: LabError[] = []) { super(message); }
}

/** The fragment for `lab` (with its "#"); throws when it would be longer than LINK_MAX_CHARS. */
export function encodeLabLink(lab: Lab): string {
  const fragment = fragmentOf(lab);
  if (fragment.length > LINK_MAX_CHARS) {
    throw new ShareLinkError(`the lab makes a link of ${fragment.length} characters, more than ${LINK_MAX_CHARS}: share it as a file`);
  }
  return fragment;
}

/** Whether `lab` fits in a link; when not, the page offers it as a file. */
export function labFitsLink(lab: Lab): { fits: boolean; chars: number } {
  const chars = fragmentOf(lab).length;
  return { fits: chars <= LINK_MAX_CHARS, chars };
}

function fragmentOf(lab: Lab): string {
  return `${PREFIX}v${LAB_FORMAT_VERSION}.${toBase64Url(zlibSync(strToU8(JSON.stringify(lab)), { level: 9 }))}`;
}

/** Does the address's fragment hold a lab? (Then the page opens it rather than the saved lab.) */
export function hasLabLink(hash: string): boolean {
  return hash.startsWith(PREFIX);
}

/** The lab in a fragment made by encodeLabLink (with or without the "#"), validated; throws ShareLinkError saying
 *  what is wrong with the link (its `errors` hold the lab's own errors when the lab is what is wrong). */
export function decodeLabLink(hash: string): Lab {
  const fragment = hash.startsWith("#") ? hash : `#${hash}`;
  if (!fragment.startsWith(PREFIX)) throw new ShareLinkError(`the link holds no lab (its fragment does not start with ${PREFIX})`);
  if (fragment.length > LINK_MAX_CHARS) throw new ShareLinkError(`the link is ${fragment.length} characters long, more than a lab link may be (${LINK_MAX_CHARS})`);
  const body = fragment.slice(PREFIX.length);
  const m = /^v([0-9]+)\.(.*)$/s.exec(body);
  if (!m) throw new ShareLinkError(`the link's lab has no version (expected ${PREFIX}v${LAB_FORMAT_VERSION}.<data>)`);
  if (Number(m[1]) !== LAB_FORMAT_VERSION) {
    throw new ShareLinkError(`the link is of lab format version ${m[1]}; this page reads version ${LAB_FORMAT_VERSION}`);
  }
  const bytes = fromBase64Url(m[2]);
  const text = inflate(bytes);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ShareLinkError(`the link's lab is not JSON (${(e as Error).message})`);
  }
  const r = validateLab(value);
  if (!r.ok) {
    throw new ShareLinkError(`the link's lab has ${r.errors.length} error${r.errors.length === 1 ? "" : "s"}: ${r.errors.map(formatLabError).join("; ")}`, r.errors);
  }
  return r.lab;
}

function inflate(bytes: Uint8Array): string {
  if (bytes.length < 6 || (bytes[0] & 0x0f) !== 8 || ((bytes[0] << 8) | bytes[1]) % 31 !== 0) {
    throw new ShareLinkError("the link's data is corrupt (it is not compressed data this page makes)");
  }
  let out: Uint8Array;
  try {
    out = unzlibSync(bytes);
  } catch (e) {
    throw new ShareLinkError(`the link's data is corrupt or cut short (${(e as Error).message})`);
  }
  if (out.length > LINK_MAX_JSON_BYTES) throw new ShareLinkError(`the link's lab is larger than ${LINK_MAX_JSON_BYTES / 1048576} MiB`);
  const sum = bytes.subarray(bytes.length - 4);
  const want = ((sum[0] << 24) | (sum[1] << 16) | (sum[2] << 8) | sum[3]) >>> 0;
  if (adler32(out) !== want) throw new ShareLinkError("the link's data is corrupt or cut short (its checksum does not match)");
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(out);
  } catch {
    throw new ShareLinkError("the link's data is corrupt (its text is not UTF-8)");
  }
}

/** zlib's checksum of the uncompressed data (RFC 1950). */
export function adler32(data: Uint8Array): number {
  let a = 1, b = 0;
  for (let i = 0; i < data.length;) {
    // 5552 bytes is the most that can be summed before the sums must be reduced (they stay below 2^32)
    const end = Math.min(i + 5552, data.length);
    for (; i < end; i++) { a += data[i]; b += a; }
    a %= 65521;
    b %= 65521;
  }
  return ((b << 16) | a) >>> 0;
}

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

export function toBase64Url(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    const chars = Math.min(4, Math.ceil(((bytes.length - i) * 8) / 6));
    for (let k = 0; k < chars; k++) s += ALPHABET[(n >> (18 - 6 * k)) & 63];
  }
  return s;
}

export function fromBase64Url(s: string): Uint8Array {
  const bad = /[^A-Za-z0-9_-]/.exec(s);
  if (bad) throw new ShareLinkError(`the link's data is not base64url (${JSON.stringify(bad[0])} at character ${bad.index + 1})`);
  if (s.length % 4 === 1) throw new ShareLinkError("the link's data is cut short (its length is not one base64url makes)");
  const out = new Uint8Array(Math.floor((s.length * 6) / 8));
  let bits = 0, acc = 0, o = 0;
  for (const c of s) {
    acc = (acc << 6) | ALPHABET.indexOf(c);
    bits += 6;
    if (bits >= 8) { bits -= 8; out[o++] = (acc >> bits) & 255; }
  }
  return out;
}
