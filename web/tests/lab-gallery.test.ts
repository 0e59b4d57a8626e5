// The gallery's labs (web/src/labs/gallery/) run for real, headless in Node through the CLI's host (cli/lab-host.ts:
// NodeVm, VirtualSwitch, Gateway): each is built, every check fails before anything was typed, then step by step
// the step's snippets are typed into their VMs' consoles (as the page's click does) and the step's checks must pass.
// Labs on the Debian system image run only where it is built (public/images/debian, npm run images:debian; CI does
// not build it): they are skipped otherwise, saying why. Also `npm run lab`'s exit status and error output.

import { describe, it, expect, afterEach } from "vitest";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { GALLERY } from "../src/labs/gallery/index.ts";
import { validateLab, formatLabError } from "../src/labs/validate.ts";
import { buildLab, runCheck } from "../src/lab-run/runner.ts";
import { DEBIAN_IMAGE, imageInfo } from "../src/lab.ts";
import type { FullLab } from "../src/labs/types.ts";
import { NodeLabHost, debianImageBuilt } from "../../cli/lab-host.ts";
import { summarizeCapture } from "../../emulator-core/src/net/pcap.ts";
import { scratchDirs } from "../../emulator-core/tests/scratch-dirs.ts";

const scratch = scratchDirs();

const ROOT = join(import.meta.dirname, "../..");
const GALLERY_DIR = join(ROOT, "web/src/labs/gallery");

const full = (lab: unknown): FullLab => {
  const r = validateLab(lab);
  if (!r.ok) throw new Error(r.errors.map(formatLabError).join("\n"));
  return r.full;
};

/** Why a lab cannot run here, or undefined when it can. */
function whyNot(needsDebian: boolean): string | undefined {
  if (!needsDebian) return undefined;
  if (!debianImageBuilt()) return "the Debian image is not built here (no public/images/debian/manifest.json; npm run images:debian)";
  return undefined;
}

const hosts: NodeLabHost[] = [];
afterEach(() => { for (const h of hosts.splice(0)) h.removeAll(); });

describe("the gallery", () => {
  it("has at least five labs, each a valid file of its own with a description, steps, snippets and checks with hints", () => {
    expect(GALLERY.length).toBeGreaterThanOrEqual(5);
    const files = readdirSync(GALLERY_DIR).filter((f) => f.endsWith(".lab.json")).sort();
    expect(GALLERY.map((g) => `${g.id}.lab.json`).sort()).toEqual(files);
    expect(new Set(GALLERY.map((g) => g.id)).size).toBe(GALLERY.length);
    for (const g of GALLERY) {
      // the list's entry is the file as shipped
      expect(g.lab).toEqual(JSON.parse(readFileSync(join(GALLERY_DIR, `${g.id}.lab.json`), "utf8")));
      const lab = full(g.lab);
      expect(g.title).toBe(lab.title);
      expect(g.summary.length).toBeGreaterThan(20);
      expect(g.summary).not.toContain("\n");
      expect(lab.description.length, g.id).toBeGreaterThan(50);
      expect(lab.steps.length, g.id).toBeGreaterThanOrEqual(2);
      expect(lab.steps.every((s) => s.text.length > 20), g.id).toBe(true);
      expect(lab.steps.flatMap((s) => s.snippets).length, g.id).toBeGreaterThan(0);
      const checks = lab.steps.flatMap((s) => s.checks);
      expect(checks.length, g.id).toBeGreaterThan(0);
      for (const c of checks) expect(c.hint.length, `${g.id}: ${c.title}`).toBeGreaterThan(0);
      // needsDebian says what the VMs run
      expect(g.needsDebian, g.id).toBe(lab.vms.some((v) => !!imageInfo(v.image)?.system));
      if (g.needsDebian) expect(lab.vms.some((v) => v.image === DEBIAN_IMAGE)).toBe(true);
    }
  });
});

for (const g of GALLERY) {
  const skip = whyNot(g.needsDebian);
  if (skip) console.warn(`lab-gallery.test.ts: ${g.id} skipped: ${skip}`);
  describe.skipIf(!!skip)(`gallery lab ${g.id}`, () => {
    it("builds headless; every check fails before anything was typed and passes once its step's snippets ran", async () => {
      const lab = full(g.lab);
      const host = new NodeLabHost();
      hosts.push(host);
      const t0 = performance.now();
      await buildLab(lab, host);
      const built = performance.now();
      for (const check of lab.steps.flatMap((s) => s.checks)) {
        const r = await runCheck(check, host);
        expect(r.pass, `before any snippet, "${check.title}" passed: ${r.output}`).toBe(false);
      }
      for (const [i, step] of lab.steps.entries()) {
        for (const s of step.snippets) await host.typeSnippet(s.vm, s.command, 240_000);
        for (const check of step.checks) {
          const r = await runCheck(check, host);
          expect(r.pass, `step ${i + 1}: "${check.title}" failed after its snippets: ${r.detail}\n${r.output}`).toBe(true);
        }
      }
      if (g.id === "dhcp-dns") {
        // what the lab says the capture shows: the renewal, the name sent by DHCP, the DNS queries for the names
        const seen = host.network("lan")!.sw.capture.frames().map((f) => summarizeCapture(f).info);
        expect(seen.some((i) => /^DHCP REQUEST .*\(desk\)/.test(i)), seen.join("\n")).toBe(true);
        expect(seen.filter((i) => /^DHCP ACK /.test(i)).length).toBeGreaterThanOrEqual(3);
        expect(seen.some((i) => /^DNS query A desk(\.lab)?$/.test(i))).toBe(true);
        expect(seen.some((i) => /^DNS response A server(\.lab)? → 10\.0\.4\.10$/.test(i))).toBe(true);
      }
      if (g.id === "resources") {
        // the balloon holds small's 64 MiB (the guest's total stays: the driver deflates on OOM, so the pages count
        // as used, as the lab's text says): less than 64 of its 128 MiB are available, with the 24 MiB file in it
        expect(host.nodeVm("small")!.balloon!.actualPages).toBe(64 * 256);
        const mem = await host.exec("small", "grep MemAvailable /proc/meminfo", 10_000);
        expect(Number(/(\d+) kB/.exec(mem.stdout)?.[1])).toBeLessThan(64 * 1024 - 24 * 1024);
      }
      host.removeAll();
      console.log(`lab-gallery: ${g.id}: built in ${((built - t0) / 1000).toFixed(1)} s, ` +
        `all in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }, g.needsDebian ? 1_500_000 : 120_000);
  });
}

describe("the build plan in real guests", () => {
  it("a VM whose lab says jit: true runs with the JIT, as in the page; the others do not", async () => {
    const lab = full({
      version: 1, title: "jit",
      networks: [{ name: "a", subnet: "10.0.6.0/24" }],
      vms: [{ name: "fast", jit: true, cards: [{ network: "a" }] }, { name: "plain", cards: [{ network: "a" }] }],
    });
    const host = new NodeLabHost();
    hosts.push(host);
    await buildLab(lab, host);
    // a loop long enough to make its blocks hot (the default threshold: 10,000 executions)
    const r = await host.exec("fast", "i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; echo $i", 60_000);
    expect(r.stdout).toBe("30000\n");
    const tier = host.nodeVm("fast")!.machine.hart.jit;
    expect(tier).toBeDefined();
    expect(tier!.stats.compiled).toBeGreaterThan(0);
    expect(host.nodeVm("plain")!.machine.hart.jit).toBeUndefined();
  }, 120_000);

  it("a VM on two DHCP networks keeps eth0's default route and name server; a route via a DHCP card is added once it has its lease", async () => {
    const lab = full({
      version: 1, title: "two DHCP cards",
      networks: [{ name: "a", subnet: "10.0.7.0/24" }, { name: "b", subnet: "10.0.8.0/24", domain: "blab" }],
      vms: [
        { name: "two", cards: [{ network: "a" }, { network: "b" }], routes: [{ to: "10.0.9.0/24", via: "10.0.8.1" }] },
        { name: "x", cards: [{ network: "a", address: "10.0.7.10" }] },
        { name: "y", cards: [{ network: "b", address: "10.0.8.10" }] },
      ],
    });
    const host = new NodeLabHost();
    hosts.push(host);
    await buildLab(lab, host);
    const sh = async (cmd: string) => (await host.exec("two", cmd, 20_000)).stdout;
    expect(await sh("ip route | grep ^default")).toMatch(/^default via 10\.0\.7\.1 dev eth0\s*$/);
    expect(await sh("ip route show 10.0.9.0/24")).toMatch(/via 10\.0\.8\.1 dev eth1/);
    expect(await sh("cat /etc/resolv.conf")).toMatch(/^search lab\nnameserver 10\.0\.7\.1\n$/);
    expect(await sh("ip -4 -o addr show dev eth1")).toMatch(/inet 10\.0\.8\.1\d\d\/24/);
    expect(await sh("cat /run/udhcpc.eth1.log")).not.toMatch(/File exists/);
    // names on eth0's network resolve; eth1's network is reached by address
    expect(await sh("ping -c 1 -W 3 x >/dev/null && echo ok")).toBe("ok\n");
    expect(await sh("ping -c 1 -W 3 10.0.8.10 >/dev/null && echo ok")).toBe("ok\n");
  }, 60_000);
});

describe("npm run lab", () => {
  const run = (...args: string[]) => spawnSync(process.execPath, [join(ROOT, "cli/tabvisor.mjs"), "lab", ...args], { encoding: "utf8", timeout: 180_000 });

  it("refuses an invalid lab file with every error as path: reason, and exit status 2", () => {
    const dir = scratch("lab-cli-");
    const file = join(dir, "bad.lab.json");
    writeFileSync(file, JSON.stringify({
      version: 1, title: "bad",
      networks: [{ name: "lan", subnet: "10.0.1.0/33" }],
      vms: [{ name: "Web", cards: [{ network: "nowhere" }] }],
    }));
    const r = run(file, "--check");
    expect(r.status).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/is not a valid lab file \(\d+ errors\)/);
    expect(r.stderr).toMatch(/^ {2}networks\[0\]\.subnet: .+$/m);
    expect(r.stderr).toMatch(/^ {2}vms\[0\]\.name: .+$/m);
    expect(r.stderr).toMatch(/^ {2}vms\[0\]\.cards\[0\]\.network: .+$/m);
    // not JSON, a missing file, no file
    writeFileSync(file, "{ version: 1");
    expect(run(file)).toMatchObject({ status: 2, stderr: expect.stringMatching(/\(lab\): is not JSON/) });
    expect(run(join(dir, "missing.lab.json"))).toMatchObject({ status: 2, stderr: expect.stringMatching(/cannot read .*no such file/) });
    expect(run()).toMatchObject({ status: 2, stderr: expect.stringMatching(/usage: npm run lab/) });
  }, 60_000);

  it("exits 1 when the lab cannot be built, saying which operation failed and why", () => {
    const dir = scratch("lab-cli-");
    const file = join(dir, "broken.lab.json");
    writeFileSync(file, JSON.stringify({
      version: 1, title: "broken", networks: [{ name: "lan", subnet: "10.0.1.0/24" }],
      vms: [{ name: "one", cards: [{ network: "lan" }], setup: { commands: ["echo starting", "no-such-program --now"] } }],
    }));
    const r = run(file, "--check");
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/The lab could not be built: one: no-such-program --now failed: exit status 127: .*not found.* Nothing of it was kept\./);
  }, 60_000);

  it("exits 1 when checks fail (a lab as built, nothing typed) and 0 when the snippets make them pass", () => {
    const file = join(GALLERY_DIR, "dhcp-dns.lab.json");
    const before = run(file, "--check", "--keep-going");
    expect(before.status, before.stderr).toBe(1);
    expect(before.stdout).toMatch(/FAIL The client renewed its lease \(client\): .*\n\s+hint: /);
    expect((before.stdout.match(/^ {2}FAIL /gm) ?? []).length).toBe(3);
    const after = run(file, "--run-snippets");
    expect(after.status, after.stdout + after.stderr).toBe(0);
    expect((after.stdout.match(/^ {2}PASS /gm) ?? []).length).toBe(3);
    expect(after.stdout).toMatch(/lab: everything passed/);
  }, 200_000);

  it.skipIf(!debianImageBuilt())("--console-exec: Debian VMs reached through their consoles (an image built before it had the agent)", () => {
    const r = run(join(GALLERY_DIR, "segmentation.lab.json"), "--run-snippets", "--console-exec");
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect((r.stdout.match(/^ {2}PASS /gm) ?? []).length).toBe(2);
  }, 200_000);
});
