// CPU time of the Chromium processes this Node process started (its descendants in /proc), by process type
// (browser, renderer, gpu-process, utility, zygote). Other browsers on the machine are not counted.

import { readFileSync, readdirSync } from "node:fs";

const TICK = 100; // USER_HZ: /proc/<pid>/stat counts in 1/100 s

export type CpuByType = Record<string, number>;

/** Seconds of CPU (user + system) so far, per Chromium process type, of the descendants of `root`. */
export function chromiumCpuSeconds(root = process.pid): CpuByType {
  const parent = new Map<number, number>();
  const stats = new Map<number, string[]>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      parent.set(Number(d), Number(f[1]));
      stats.set(Number(d), f);
    } catch { /* gone */ }
  }
  const mine = (pid: number): boolean => {
    for (let p = pid, n = 0; p > 1 && n < 64; p = parent.get(p) ?? 0, n++) if (p === root) return true;
    return false;
  };
  const out: CpuByType = {};
  for (const [pid, f] of stats) {
    if (!mine(pid)) continue;
    let cmd = "";
    try { cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8"); } catch { continue; }
    if (!cmd.includes("chromium")) continue;
    const type = /--type=([a-z-]+)/.exec(cmd)?.[1] ?? "browser";
    out[type] = (out[type] ?? 0) + (Number(f[11]) + Number(f[12])) / TICK;
  }
  return out;
}

/** Percent of one core per process type (and "all") between two readings `wallMs` apart. */
export function cpuPercent(a: CpuByType, b: CpuByType, wallMs: number): CpuByType {
  const out: CpuByType = { all: 0 };
  for (const k of Object.keys(b)) {
    const p = (100 * (b[k] - (a[k] ?? 0)) * 1000) / wallMs;
    out[k] = p;
    out.all += p;
  }
  return out;
}
