// virtio-rng / entropy device (device ID 4): one queue; every device-writable buffer is filled with entropy.
// Spec section 5.4. A chain gets at most 64 KiB per request (the device may write less than offered).

import { cryptoEntropy, type EntropySource } from "./backends.ts";
import { VIRTIO_ID_RNG, type VirtioDevice, type VirtioTransport } from "./mmio.ts";
import { DescChain } from "./queue.ts";
import { StateReader, type StateValue } from "../../snapshot/state-value.ts";

const MAX_PER_REQUEST = 65536;

export class VirtioRng implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_RNG;
  readonly features = 0n;
  readonly queueCount = 1;
  readonly config = new Uint8Array(0);
  /** bytes of entropy handed to the guest */
  bytes = 0;
  requests = 0;

  private t: VirtioTransport | null = null;
  private chain: DescChain | null = null;
  /** private, non-shared: crypto.getRandomValues refuses views of shared memory in browsers */
  private readonly scratch = new Uint8Array(MAX_PER_REQUEST);

  constructor(readonly source: EntropySource = cryptoEntropy) {}

  attach(t: VirtioTransport): void {
    this.t = t;
    this.chain = new DescChain(t.mem.bytes);
  }

  reset(): void {}

  /** Only statistics: the device keeps nothing between requests (its queue is the transport's). */
  saveState(): StateValue {
    return { bytes: this.bytes, requests: this.requests };
  }

  restoreState(state: StateValue): void {
    const r = new StateReader(state, "virtio-rng");
    const bytes = r.num("bytes", 0);
    const requests = r.num("requests", 0);
    this.bytes = bytes;
    this.requests = requests;
  }

  queueNotify(queue: number): void {
    const t = this.t!;
    const vq = t.queue(queue);
    const c = this.chain!;
    let n = 0;
    try {
      while (n < vq.num && vq.pop(c)) {
        const len = Math.min(c.writeTotal, MAX_PER_REQUEST);
        const buf = this.scratch.subarray(0, len);
        let written = 0;
        try {
          this.source.fill(buf);
          written = c.copyTo(0, buf);
        } catch {
          written = 0; // no entropy available: complete the request empty
        }
        vq.push(c.head, written);
        this.bytes += written;
        this.requests++;
        n++;
      }
    } finally {
      if (n > 0) t.usedBuffers(vq);
    }
  }
}
