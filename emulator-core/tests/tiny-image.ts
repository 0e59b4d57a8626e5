// Tiny guests for machine tests: a RISC-V Linux Image holding a few instructions, and the encodings they use.

export const WFI = 0x10500073;
export const ECALL = 0x00000073;
export const JUMP_SELF = 0x0000006f; // j .
export const JUMP_BACK = 0xffdff06f; // j .-4
/** waits for interrupts for ever */
export const IDLE_FOREVER = [WFI, JUMP_BACK];

/** A RISC-V Linux Image (boot-image-header.rst) whose code, after the 64-byte header, is `code`. */
export function tinyImage(code: number[]): Uint8Array {
  const bytes = new Uint8Array(64 + code.length * 4);
  const dv = new DataView(bytes.buffer);
  dv.setUint32(0, 0x0400006f, true); // j +64: over the header
  dv.setBigUint64(8, 0x200000n, true); // text_offset
  dv.setBigUint64(16, BigInt(bytes.length), true); // image_size
  bytes.set(new TextEncoder().encode("RISCV"), 48);
  dv.setUint32(56, 0x05435352, true);
  code.forEach((w, i) => dv.setUint32(64 + 4 * i, w, true));
  return bytes;
}
