// Number formatting for the network views.

export function bytes(n: number): string {
  if (n < 1024) return `${Math.round(n)} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(2)} GiB`;
}

/** bytes per second as bits per second */
export function bitRate(bytesPerSec: number): string {
  const b = bytesPerSec * 8;
  if (b < 1000) return `${Math.round(b)} bit/s`;
  if (b < 1e6) return `${(b / 1e3).toFixed(1)} kbit/s`;
  if (b < 1e9) return `${(b / 1e6).toFixed(1)} Mbit/s`;
  return `${(b / 1e9).toFixed(2)} Gbit/s`;
}

export function packetRate(pps: number): string {
  return pps < 10 ? `${pps.toFixed(1)} pkt/s` : `${Math.round(pps)} pkt/s`;
}

export function count(n: number): string {
  return n < 10_000 ? String(n) : n < 1e6 ? `${(n / 1e3).toFixed(1)}k` : `${(n / 1e6).toFixed(2)}M`;
}
