// The RISC-V Linux boot image header (Documentation/riscv/boot-image-header.rst) and where things go in RAM.

import { gunzip, isGzip } from "../gunzip.ts";

export class BootError extends Error {}

export interface LinuxImageInfo {
  textOffset: bigint;
  /** the kernel's full size in memory, BSS included */
  imageSize: bigint;
}

export function parseLinuxImage(image: Uint8Array): LinuxImageInfo {
  if (image.length < 64) throw new BootError("the kernel is not a RISC-V Linux Image (file too short)");
  const dv = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const magic = new TextDecoder().decode(image.subarray(0x30, 0x35));
  const magic2 = dv.getUint32(0x38, true);
  if (magic !== "RISCV" && magic2 !== 0x05435352) {
    if (image[0] === 0x7f && image[1] === 0x45) throw new BootError("the kernel is an ELF file (vmlinux); give the Image file instead");
    if (image[0] === 0x1f && image[1] === 0x8b) throw new BootError("the kernel is gzip-compressed; give the uncompressed Image");
    throw new BootError("the kernel is not a RISC-V Linux Image (no RISCV magic in its header)");
  }
  const textOffset = dv.getBigUint64(8, true);
  let imageSize = dv.getBigUint64(16, true);
  if (imageSize < BigInt(image.length)) imageSize = BigInt(image.length);
  if (textOffset > 0x1000_0000n) throw new BootError("the kernel Image header is corrupt (text_offset too large)");
  return { textOffset, imageSize };
}

/** A cpio "newc" archive, optionally gzip-compressed, is what Linux accepts as an initramfs. */
export function checkInitrd(initrd: Uint8Array): void {
  if (initrd.length < 6) throw new BootError("the initrd is empty or truncated");
  const gz = initrd[0] === 0x1f && initrd[1] === 0x8b;
  const cpio = new TextDecoder().decode(initrd.subarray(0, 6)) === "070701";
  if (!gz && !cpio) throw new BootError("the initrd is neither a cpio archive nor gzip-compressed");
  if (gz && initrd.length < 20) throw new BootError("the initrd is truncated");
}

/** The largest archive unpackInitrd unpacks on the host: far above any initramfs a VM boots. */
export const MAX_UNPACKED_INITRD = 1 << 30;

/** The cpio archive inside a gzip initramfs, unpacked by the host, which inflates it many times faster than the
 *  emulated guest would (Linux inflates a gzip initramfs with the kernel's zlib: about 40% of the instructions of
 *  the default guest's boot). Anything else comes back as it is, and so does a file the host cannot unpack whole
 *  (damaged, several gzip members, or larger than `limit`): Linux takes what it can and says what is wrong. */
export async function unpackInitrd(initrd: Uint8Array, limit = MAX_UNPACKED_INITRD): Promise<Uint8Array> {
  if (!isGzip(initrd) || initrd.length < 20) return initrd;
  // gzip's trailer gives the size (mod 2^32): the output buffer is made that size, and gunzip refuses a file whose
  // output runs past it
  const size = new DataView(initrd.buffer, initrd.byteOffset + initrd.length - 4, 4).getUint32(0, true);
  if (size > limit) return initrd;
  try {
    const cpio = await gunzip(initrd, size);
    return cpio.length === size ? cpio : initrd;
  } catch {
    return initrd;
  }
}
