// The lab runner (web/src/lab-run/runner.ts) against a fake page: the order it builds in, the gateway's DNS told
// the statically addressed VMs, a lab never half built (a failing operation removes everything the build made and
// says which operation failed and why), names that clash refused before anything is made, and how checks are judged.

import { describe, it, expect } from "vitest";
import { readFileSync } from "node:fs";
import { buildLab, runCheck, LabBuildError, type GuestResult, type LabHost } from "../src/lab-run/runner.ts";
import { parseLabText } from "../src/labs/validate.ts";
import type { FullLab } from "../src/labs/types.ts";
import type { NetworkConfig } from "../net/switch-host.ts";
import { labFromPage, type PageView } from "../src/lab-run/from-page.ts";
import { planLab } from "../src/labs/plan.ts";
import { validateLab } from "../src/labs/validate.ts";
import type { Lab } from "../src/labs/types.ts";

const example = (): FullLab => {
  const r = parseLabText(readFileSync(new URL("../src/labs/examples/router.lab.json", import.meta.url), "utf8"));
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.full;
};

class FakeHost implements LabHost {
  log: string[] = [];
  vms = new Set<string>();
  nets = new Map<string, NetworkConfig>();
  files = new Map<string, string>();
  failOn?: RegExp;
  answer: (vm: string, cmd: string) => GuestResult | "hang" = () => ({ exitCode: 0, timedOut: false, stdout: "", stderr: "" });
  vmNames() { return [...this.vms]; }
  networkNames() { return [...this.nets.keys()]; }
  createNetwork(c: NetworkConfig) { this.nets.set(c.name, c); this.log.push(`net ${c.name}`); }
  removeNetwork(n: string) { this.nets.delete(n); this.log.push(`-net ${n}`); }
  createVm(spec: { name: string; bootArgs: string }, o: { cards: { network?: string | null }[] }) {
    this.vms.add(spec.name);
    this.log.push(`vm ${spec.name} [${o.cards.map((c) => c.network).join(",")}] ${spec.bootArgs}`.trim());
  }
  removeVm(n: string) { this.vms.delete(n); this.log.push(`-vm ${n}`); }
  async waitReady(vm: string) { await new Promise((r) => setTimeout(r, 1)); this.log.push(`ready ${vm}`); }
  async exec(vm: string, cmd: string, ms: number): Promise<GuestResult> {
    this.log.push(`${vm}$ ${cmd}`);
    if (this.failOn?.test(cmd)) return { exitCode: 2, timedOut: false, stdout: "", stderr: "sh: oops: not found\n" };
    const a = this.answer(vm, cmd);
    if (a === "hang") throw new Error(`no answer within ${ms} ms`);
    return a;
  }
  async putFile(vm: string, path: string, mode: number, data: Uint8Array) {
    this.files.set(`${vm}:${path}`, `${mode.toString(8)} ${new TextDecoder().decode(data)}`);
    this.log.push(`${vm} put ${path}`);
  }
}

describe("lab runner", () => {
  it("builds networks, then VMs, then each guest's network, files and commands in order", async () => {
    const host = new FakeHost();
    const seen: number[] = [];
    await buildLab(example(), host, (p) => seen.push(p.done));
    expect([...host.nets.keys()]).toEqual(["lan", "dmz"]);
    // statically addressed VMs are names in their networks' DNS (dmz has DHCP off but DNS on)
    expect(host.nets.get("lan")!.hosts).toEqual([{ name: "router", address: "10.0.1.254" }]);
    expect(host.nets.get("dmz")!.hosts).toEqual([{ name: "router", address: "10.0.2.254" }, { name: "web", address: "10.0.2.10" }]);
    expect(host.log.slice(0, 5)).toEqual([
      "net lan", "net dmz", "vm client [lan]", expect.stringMatching(/^vm router \[lan,dmz\] tabvisor\.ip=10\.0\.1\.254\/24/),
      expect.stringMatching(/^vm web \[dmz\] tabvisor\.ip=10\.0\.2\.10\/24/),
    ]);
    const web = host.log.filter((l) => l.startsWith("web") || l === "ready web");
    expect(web[0]).toBe("ready web");
    expect(web.findIndex((l) => l.includes("put /www/index.html"))).toBeLessThan(web.findIndex((l) => l.includes("$ /usr/local/bin/serve")));
    expect(host.files.get("web:/usr/local/bin/serve")).toMatch(/^755 #!\/bin\/sh/);
    expect(host.log).toContain("router$ echo 1 > /proc/sys/net/ipv4/ip_forward");
    expect(host.log).toContain("router$ ip link set eth1 up && ip addr add 10.0.2.254/24 dev eth1");
    expect(seen.at(-1)).toBeGreaterThan(5);
  });

  it("is never half built: a failing command removes everything and says which and why", async () => {
    const host = new FakeHost();
    host.failOn = /serve/;
    const err = await buildLab(example(), host).catch((e) => e);
    expect(err).toBeInstanceOf(LabBuildError);
    expect(err.message).toBe("The lab could not be built: web: /usr/local/bin/serve failed: exit status 2: sh: oops: not found Nothing of it was kept.");
    expect(host.vmNames()).toEqual([]);
    expect(host.networkNames()).toEqual([]);
    // and a guest that never answers is a failure too, not a hang
    const quiet = new FakeHost();
    quiet.answer = (vm) => (vm === "router" ? "hang" : { exitCode: 0, timedOut: false, stdout: "", stderr: "" });
    await expect(buildLab(example(), quiet)).rejects.toThrow(/router: ip link set eth1 up .* failed: no answer within 15000 ms/);
    expect(quiet.vmNames()).toEqual([]);
  });

  it("refuses, before making anything, a lab whose names the page has already", async () => {
    const host = new FakeHost();
    host.vms.add("web");
    host.nets.set("lan", { name: "lan" });
    await expect(buildLab(example(), host)).rejects.toThrow("The lab cannot be built here: the page already has a VM named web and a network named lan. Delete them, or open the lab in a new tab.");
    expect(host.log).toEqual([]);
  });

  it("judges checks by exit status and output, with a time limit and 'no answer'", async () => {
    const host = new FakeHost();
    const check = example().steps[0].checks[0];
    host.answer = () => ({ exitCode: 0, timedOut: false, stdout: "<h1>hello from the dmz</h1>\n", stderr: "" });
    expect(await runCheck(check, host)).toMatchObject({ pass: true });
    host.answer = () => ({ exitCode: 0, timedOut: false, stdout: "<h1>something else</h1>\n", stderr: "" });
    expect((await runCheck(check, host)).detail).toMatch(/^its output does not match \//);
    host.answer = () => ({ exitCode: 1, timedOut: false, stdout: "", stderr: "wget: can't connect to remote host: Connection refused" });
    expect(await runCheck(check, host)).toMatchObject({ pass: false, detail: "it exited with status 1", output: expect.stringContaining("Connection refused") });
    host.answer = () => ({ exitCode: -1, timedOut: true, stdout: "", stderr: "" });
    expect((await runCheck(check, host)).detail).toBe(`the check did not finish within ${check.timeoutSeconds} s`);
    host.answer = () => "hang";
    expect((await runCheck(check, host)).detail).toMatch(/^no answer from client: /);
  });
});

describe("the lab file follows the page", () => {
  const raw = (): Lab => JSON.parse(readFileSync(new URL("../src/labs/examples/router.lab.json", import.meta.url), "utf8"));
  /** The page as building the lab leaves it (what the plan makes). */
  const built = (): PageView => {
    const ops = planLab(example());
    return {
      networks: ops.flatMap((o) => (o.kind === "create-network" ? [o.config] : [])),
      vms: ops.flatMap((o) => (o.kind === "create-vm" ? [{ spec: o.spec, cards: o.options.cards.map((c) => c.network ?? null) }] : [])),
    };
  };
  const full = (lab: Lab) => {
    const r = validateLab(lab);
    if (!r.ok) throw new Error(r.errors.map((e) => `${e.path}: ${e.message}`).join("; "));
    return r.full;
  };

  it("the page as the lab built it gives the same lab file back", () => {
    expect(labFromPage(built(), raw())).toEqual(raw());
  });

  it("VMs added, removed and changed, and cards moved, in the dashboard are in the file; checks of a deleted VM go", () => {
    const page = built();
    page.vms = page.vms.filter((v) => v.spec.name !== "client");
    page.vms.find((v) => v.spec.name === "web")!.spec.ramMiB = 96;
    page.vms.push({ spec: { ...page.vms[0].spec, name: "extra", bootArgs: "", ramMiB: 64, cpuCap: 100, weight: 100, diskMiB: 0, balloonMiB: 0 }, cards: ["lan", null] });
    page.networks.push({ name: "spare", gateway: "192.168.5.1/24" }, { name: "lan0", gateway: "10.0.9.1/24" });
    const lab = labFromPage({ ...page, defaultNetwork: "lan0" }, raw());
    const f = full(lab);
    expect(f.vms.map((v) => v.name)).toEqual(["router", "web", "extra"]);
    expect(f.vms[1].memoryMiB).toBe(96);
    // kept from the file: web's static address, routes and setup
    expect(f.vms[1].cards).toEqual([{ network: "dmz", address: "10.0.2.10" }]);
    expect(f.vms[1].setup.commands).toEqual(["/usr/local/bin/serve"]);
    expect(f.vms[2].cards).toEqual([{ network: "lan", address: "dhcp" }]);
    // a network made in the dashboard is the lab's too; the page's default one, unused, is not
    expect(f.networks.map((n) => n.name)).toEqual(["lan", "dmz", "spare"]);
    // the steps' snippets and checks on the deleted client are gone
    expect(f.steps[0].snippets).toEqual([]);
    expect(f.steps[0].checks).toEqual([]);
  });

  it("a VM's JIT turned on in the dashboard is in the file; turned off again, it leaves the file", () => {
    const page = built();
    const web = page.vms.find((v) => v.spec.name === "web")!;
    web.spec.jit = true;
    const on = labFromPage(page, raw());
    expect(on.vms.find((v) => v.name === "web")!.jit).toBe(true);
    expect(full(on).vms.map((v) => v.jit)).toEqual([false, false, true]);
    web.spec.jit = false;
    const off = labFromPage(page, on);
    expect("jit" in off.vms.find((v) => v.name === "web")!).toBe(false); // the default is not written out
    expect(full(off)).toEqual(full(raw()));
  });

  it("a page without a lab file becomes a new lab", () => {
    const page = built();
    const lab = labFromPage({ ...page, networks: [...page.networks, { name: "lan2", gateway: "10.9.0.1/16", dhcp: false }], defaultNetwork: "lan2" }, undefined, "Built by hand");
    const f = full(lab);
    expect(f.title).toBe("Built by hand");
    expect(f.vms.map((v) => v.name)).toEqual(["client", "router", "web"]);
    expect(f.vms[1].cards.map((c) => c.address)).toEqual(["dhcp", "dhcp"]);
    expect(f.networks.map((n) => n.name)).toEqual(["lan", "dmz"]);
  });
});
