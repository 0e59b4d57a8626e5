// A Kathará lab as a Tabvisor lab: lab.conf (machines, their interfaces on collision domains, a few options) and
// the files beside it, given as a map of file name to text: MACHINE.startup (its startup commands),
// shared.startup (run on every machine first), MACHINE/path (a file the machine has at /path), shared/path (at
// /shared/path on every machine, where Kathará mounts the shared folder). Collision domains become networks;
// addresses, routes and IP forwarding in the startup files become the lab's own; the rest of each startup file runs
// at first boot. Images, and the options Tabvisor has nothing for, are left out with a note.

import { MAX_RAM_MIB, MIN_RAM_MIB } from "../lab.ts";
import { LIMITS } from "./shapes.ts";
import { ImportError, labFromTopology, type ImportResult, type ImportedMachine } from "./topology.ts";
import type { LabFile } from "./types.ts";

interface KatharaMachine { interfaces: Map<number, string>; options: Map<string, string> }

export function importKathara(files: Record<string, string>): ImportResult {
  const conf = files["lab.conf"];
  if (conf === undefined) throw new ImportError("a Kathará lab needs its lab.conf");
  const notes: string[] = [];
  const meta = new Map<string, string>();
  const machines = new Map<string, KatharaMachine>();
  const machine = (name: string) => {
    let m = machines.get(name);
    if (!m) machines.set(name, (m = { interfaces: new Map(), options: new Map() }));
    return m;
  };

  conf.replace(/\r\n?/g, "\n").split("\n").forEach((raw, k) => {
    const line = raw.trim();
    if (!line || line.startsWith("#")) return;
    let m: RegExpExecArray | null;
    if ((m = /^(LAB_[A-Z_]+)=(.*)$/.exec(line))) { meta.set(m[1], unquote(m[2])); return; }
    if ((m = /^([A-Za-z0-9_.-]+)\[([A-Za-z0-9_]+)\]=(.*)$/.exec(line))) {
      const mc = machine(m[1]);
      const value = unquote(m[3]);
      if (/^[0-9]+$/.test(m[2])) {
        const [domain, mac] = value.split("/");
        mc.interfaces.set(Number(m[2]), domain);
        if (mac) notes.push(`${m[1]}: eth${m[2]}'s MAC ${mac} left out (cards get their own)`);
      } else {
        mc.options.set(m[2], value);
      }
      return;
    }
    notes.push(`lab.conf line ${k + 1} not understood, left out: ${line}`);
  });

  // a machine folder or startup file alone also makes a machine in Kathará
  for (const f of Object.keys(files)) {
    const m = /^([A-Za-z0-9_.-]+)(?:\.startup|\/.+)$/.exec(f);
    if (m && m[1] !== "shared" && !/^lab\./.test(f)) machine(m[1]);
  }

  const shared = lines(files["shared.startup"]);
  const sharedFiles = filesUnder(files, "shared", "/shared", notes);
  const imported: ImportedMachine[] = [];
  for (const [name, mc] of machines) {
    const indexes = [...mc.interfaces.keys()].sort((a, b) => a - b);
    if (indexes.some((n, i) => n !== i)) {
      notes.push(`${name}: its interfaces ${indexes.map((n) => `eth${n}`).join(", ")} are numbered with gaps; they become ${indexes.map((_, i) => `eth${i}`).join(", ")} (their addresses go along; other startup commands may name the old ones)`);
    }
    const out: ImportedMachine = {
      name, interfaces: indexes.map((n) => mc.interfaces.get(n)!), renamed: new Map(indexes.map((n, i) => [`eth${n}`, `eth${i}`])),
      startup: [...shared, ...lines(files[`${name}.startup`])],
      files: [...sharedFiles, ...filesUnder(files, name, "", notes)],
    };
    for (const [key, value] of mc.options) applyOption(out, key, value, notes);
    imported.push(out);
  }
  for (const f of Object.keys(files)) {
    if (f === "lab.conf" || f === "shared.startup" || /\.startup$/.test(f) || f.includes("/")) continue;
    notes.push(`${f} left out (${f === "lab.dep" ? "machines start together, not in an order" : "not a file Tabvisor reads"})`);
  }
  const description = [meta.get("LAB_DESCRIPTION"), meta.get("LAB_AUTHOR") && `Author: ${meta.get("LAB_AUTHOR")}`].filter(Boolean).join("\n\n");
  return labFromTopology(meta.get("LAB_NAME") ?? "Kathará lab", description, imported, notes);
}

function applyOption(m: ImportedMachine, key: string, value: string, notes: string[]): void {
  switch (key) {
    case "image":
      notes.push(`${m.name}: image ${value} left out (it runs the busybox image)`);
      return;
    case "mem": {
      const mm = /^([0-9]+)([kmg]?)b?$/i.exec(value);
      const mib = mm ? Number(mm[1]) * ({ k: 1 / 1024, m: 1, g: 1024, "": 1 / 1048576 }[mm[2].toLowerCase() as "k" | "m" | "g" | ""]) : NaN;
      if (!Number.isFinite(mib)) { notes.push(`${m.name}: mem=${value} not understood, left out`); return; }
      m.memoryMiB = Math.min(MAX_RAM_MIB, Math.max(MIN_RAM_MIB, Math.round(mib)));
      if (m.memoryMiB !== Math.round(mib)) notes.push(`${m.name}: mem=${value} is ${m.memoryMiB} MiB (a VM has ${MIN_RAM_MIB} to ${MAX_RAM_MIB})`);
      return;
    }
    case "cpus": {
      const cpus = Number(value);
      if (!(cpus > 0)) { notes.push(`${m.name}: cpus=${value} not understood, left out`); return; }
      m.cpuCap = Math.max(1, Math.min(100, Math.round(cpus * 100)));
      if (cpus > 1) notes.push(`${m.name}: cpus=${value} is a cap of one core (a VM has one)`);
      return;
    }
    case "sysctl":
      if (/^net\.ipv4\.(ip_forward|conf\.all\.forwarding)=1$/.test(value)) m.forwarding = true;
      else m.startup.push(`sysctl -w ${value}`);
      return;
    case "exec":
      m.startup.push(value);
      notes.push(`${m.name}: exec=${value} runs at first boot, after its startup file`);
      return;
    default:
      notes.push(`${m.name}: option ${key}=${value} left out`);
  }
}

/** The files of folder `dir` (keys "dir/..."), placed under `root` in the guest. */
function filesUnder(files: Record<string, string>, dir: string, root: string, notes: string[]): LabFile[] {
  const out: LabFile[] = [];
  for (const [f, content] of Object.entries(files)) {
    if (!f.startsWith(`${dir}/`) || f.endsWith("/")) continue;
    const path = `${root}/${f.slice(dir.length + 1)}`;
    if (new TextEncoder().encode(content).length > LIMITS.fileBytes) { notes.push(`${f} left out (larger than ${LIMITS.fileBytes / 1024} KiB)`); continue; }
    if (path.split("/").some((s) => s === "." || s === "..")) { notes.push(`${f} left out (its path has "." or "..")`); continue; }
    out.push({ path, content });
  }
  return out;
}

function lines(text: string | undefined): string[] {
  return text === undefined ? [] : text.replace(/\r\n?/g, "\n").split("\n");
}

function unquote(v: string): string {
  const t = v.trim();
  return /^"(.*)"$/.test(t) || /^'(.*)'$/.test(t) ? t.slice(1, -1) : t;
}
