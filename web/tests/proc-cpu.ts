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

/** Seconds of CPU so far per thread of the Chromium processes under `root`, keyed "type/thread name" (threads of the
 *  same name summed: every VM's worker is a "DedicatedWorker" thread of the renderer, the page's own JavaScript runs
 *  on the renderer's main thread, "chromium"/"CrRendererMain"). */
export function chromiumThreadCpuSeconds(root = process.pid): CpuByType {
  const out: CpuByType = {};
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    let cmd = "";
    try { cmd = readFileSync(`/proc/${d}/cmdline`, "utf8"); } catch { continue; }
    if (!cmd.includes("chromium") || !descends(Number(d), root)) continue;
    const type = /--type=([a-z-]+)/.exec(cmd)?.[1] ?? "browser";
    let tasks: string[] = [];
    try { tasks = readdirSync(`/proc/${d}/task`); } catch { continue; }
    for (const t of tasks) {
      try {
        const stat = readFileSync(`/proc/${d}/task/${t}/stat`, "utf8");
        const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
        const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        const key = `${type}/${name}`;
        out[key] = (out[key] ?? 0) + (Number(f[11]) + Number(f[12])) / TICK;
      } catch { /* gone */ }
    }
  }
  return out;
}

function descends(pid: number, root: number): boolean {
  for (let p = pid, n = 0; p > 1 && n < 64; n++) {
    if (p === root) return true;
    try {
      const stat = readFileSync(`/proc/${p}/stat`, "utf8");
      p = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    } catch { return false; }
  }
  return false;
}

/** CPU of the VM workers (the renderers' DedicatedWorker threads) in percent of one core, from two
 *  chromiumThreadCpuSeconds readings `wallMs` apart; also what the rest of the browser took. */
export function workerShare(a: CpuByType, b: CpuByType, wallMs: number): { workers: number; rest: number; all: number; threads: string } {
  let workers = 0, all = 0;
  const each: [string, number][] = [];
  for (const k of Object.keys(b)) {
    const p = (100 * (b[k] - (a[k] ?? 0)) * 1000) / wallMs;
    all += p;
    if (/^renderer\/DedicatedWorker/.test(k)) workers += p;
    if (p >= 0.05) each.push([k, p]);
  }
  const threads = each.sort((x, y) => y[1] - x[1]).map(([k, p]) => `${k} ${p.toFixed(2)}`).join(", ");
  return { workers, rest: all - workers, all, threads };
}

/** Resident memory of this process's Chromium processes (MiB). */
export function chromiumRssMiB(): number {
  let kb = 0;
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (!readFileSync(`/proc/${d}/cmdline`, "utf8").includes("chromium")) continue;
      const status = readFileSync(`/proc/${d}/status`, "utf8");
      let ppid = Number(/PPid:\s+(\d+)/.exec(status)?.[1]);
      let mine = false;
      for (let n = 0; n < 32 && ppid > 1; n++) {
        if (ppid === process.pid) { mine = true; break; }
        ppid = Number(/PPid:\s+(\d+)/.exec(readFileSync(`/proc/${ppid}/status`, "utf8"))?.[1]);
      }
      if (mine) kb += Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    } catch { /* gone */ }
  }
  return kb / 1024;
}
