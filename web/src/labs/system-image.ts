// The guest images a lab may name (web/src/lab.ts IMAGES), and what an image that is a whole system disk asks of
// its VM.

import { IMAGES } from "../lab.ts";

/** What an image that is a whole system disk (not the busybox initramfs) asks of a VM, when it is one. Read
 *  without naming the field's type: IMAGES may list such images or not. */
export function systemOf(image: string | undefined): { ramMiB: number; minRamMiB: number } | undefined {
  const info = IMAGES.find((i) => i.id === (image ?? IMAGES[0].id)) as { system?: { ramMiB: number; minRamMiB: number } } | undefined;
  return info?.system;
}
