// gzip decompression with the platform's own inflater (DecompressionStream: browsers, workers, Node 18+), with a
// bound on the output: a small file that claims, or turns out, to hold far more is refused as soon as its output
// passes the bound, having taken no more memory than the bound.

/** The bytes inside a gzip file, at most `limit` of them; throws if the file is damaged or holds more. */
export async function gunzip(bytes: Uint8Array, limit: number): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream("gzip"));
  const reader = stream.getReader();
  const out = new Uint8Array(limit);
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (n + value.length > limit) {
      await reader.cancel().catch(() => {}); // stops the inflater; what it says as it stops does not matter
      throw new Error(`decompresses to more than ${limit} bytes`);
    }
    out.set(value, n);
    n += value.length;
  }
  return n === limit ? out : out.subarray(0, n);
}

/** Whether `bytes` starts as a gzip file does (RFC 1952's ID1, ID2). */
export const isGzip = (bytes: Uint8Array): boolean => bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
