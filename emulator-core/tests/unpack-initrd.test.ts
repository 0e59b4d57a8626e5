// The host unpacks a gzip initramfs before the guest boots it (linux-image.ts unpackInitrd in the page, NodeVm's
// own in Node); what it cannot unpack whole goes to the guest as it is.
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { gunzipSync, gzipSync } from "node:zlib";
import { unpackInitrd } from "../src/machine/linux-image.ts";

const gz = new Uint8Array(readFileSync(new URL("../../public/images/initramfs.cpio.gz", import.meta.url)));

describe("unpackInitrd", () => {
  it("gives the cpio archive inside the default gzip initramfs", async () => {
    const cpio = await unpackInitrd(gz);
    expect(new TextDecoder().decode(cpio.subarray(0, 6))).toBe("070701");
    expect(Buffer.from(cpio).equals(gunzipSync(gz))).toBe(true);
  });

  it("hands back what it cannot unpack whole: not gzip, damaged, two members, over the limit", async () => {
    const cpio = gunzipSync(gz);
    expect(await unpackInitrd(cpio)).toBe(cpio);
    const truncated = gz.subarray(0, gz.length >> 1);
    expect(await unpackInitrd(truncated)).toBe(truncated);
    const flipped = gz.slice();
    flipped[flipped.length >> 1] ^= 0xff;
    expect(await unpackInitrd(flipped)).toBe(flipped);
    // two gzip members (Linux takes concatenated archives): the trailer gives only the last one's size
    const two = new Uint8Array(Buffer.concat([gzipSync(Buffer.alloc(5000, 1)), gzipSync(Buffer.alloc(100, 2))]));
    expect(await unpackInitrd(two)).toBe(two);
    expect(await unpackInitrd(gz, 1 << 20)).toBe(gz);
  });

  it("refuses a file whose trailer understates what it holds, without making more than the trailer says", async () => {
    const liar = new Uint8Array(gzipSync(Buffer.alloc(1 << 20)));
    new DataView(liar.buffer, liar.byteOffset).setUint32(liar.length - 4, 4096, true);
    expect(await unpackInitrd(liar)).toBe(liar);
  });
});
