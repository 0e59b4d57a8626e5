// Labs in the page (Chromium): a share link opens the lab and builds it (networks, VMs, setup), the Lab panel
// shows its steps; a check fails before its step's snippet runs and passes after (run through the control channel,
// not the console); Export gives the lab file back and Share a link that opens the same lab in a new page
// (deep-equal); Reset lab builds it again; the lab file follows the dashboard's edits; a Kathará lab and a
// containerlab topology are imported and booted; a malformed link or file is refused
// with its reason and loses nothing.

import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { readFileSync } from "node:fs";
import type { Page } from "playwright-core";
import { startDevServer, launchBrowser, setSavedLab, type Served, type Browser } from "./harness.ts";
import { encodeLabLink, decodeLabLink } from "../src/labs/share.ts";
import type { Lab } from "../src/labs/types.ts";

/** The router example, with a step whose check needs the student: it fails until the snippet has run. */
function theLab(): Lab {
  const lab = JSON.parse(readFileSync(new URL("../src/labs/examples/router.lab.json", import.meta.url), "utf8")) as Lab;
  lab.steps!.push({
    title: "Leave a note",
    text: "Write **done** into `/tmp/note` on the client.",
    snippets: [{ vm: "client", command: "echo done > /tmp/note" }],
    checks: [{ title: "The note is there", vm: "client", command: "cat /tmp/note", pass: { stdout: "^done$" }, hint: "Click the snippet above." }],
  });
  return lab;
}

describe("labs in the page (vite dev server, Chromium)", () => {
  let server: Served;
  let browser: Browser;
  let page: Page;
  const errors: string[] = [];
  const lab = theLab();

  const built = (p: Page = page) => p.waitForFunction(() => window.tabvisor?.labs?.session?.build.kind === "built", undefined, { timeout: 180_000, polling: 250 });
  const result = async (id: string) => {
    await expect.poll(() => page.getByTestId(`check-result-${id}`).count(), { timeout: 60_000 }).toBe(1);
    const el = page.getByTestId(`check-result-${id}`);
    return { pass: await el.getAttribute("data-pass"), text: await el.innerText() };
  };

  beforeAll(async () => {
    server = await startDevServer();
    browser = await launchBrowser();
    page = browser.page;
    page.on("pageerror", (e) => errors.push(e.message));
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it("a share link builds the lab; a check fails before its snippet and passes after", async () => {
    await page.goto(server.url + encodeLabLink(lab));
    await page.getByTestId("lab-panel").waitFor({ timeout: 60_000 });
    expect(await page.getByTestId("lab-title").innerText()).toBe("Two networks and a router");
    await built();
    expect((await page.evaluate(() => window.tabvisor!.vms())).sort()).toEqual(["client", "router", "web"]);
    // the lab's networks, this tab's own
    expect(await page.evaluate(() => window.tabvisor!.hv!.entries.length)).toBe(3);
    // across the router: passes once built (the setup started the web server)
    await page.getByTestId("check-0-0").click();
    expect(await result("0-0")).toEqual({ pass: "true", text: "✓ Passed" });
    // the student's step: fails first, with the hint
    await page.getByTestId("check-1-0").click();
    const before = await result("1-0");
    expect(before.pass).toBe("false");
    expect(before.text).toMatch(/✗ it exited with status 1\s+Hint: Click the snippet above\./);
    await page.getByTestId("snippet-1-0").click();
    // typed into client's console (selected), as if by hand
    await expect.poll(() => page.evaluate(() => window.tabvisor!.selected())).toBe("client");
    // (the console may be narrow: lines wrap)
    await expect.poll(async () => (await page.evaluate(() => window.tabvisor!.textOf("client"))).replace(/\n/g, ""), { timeout: 10_000 }).toMatch(/echo done > \/tmp\/note/);
    await page.getByTestId("check-1-0").click();
    await expect.poll(async () => (await result("1-0")).pass, { timeout: 30_000 }).toBe("true");
    expect(await page.getByTestId("lab-progress").innerText()).toBe("2 of 2 checks passed");
    expect(errors).toEqual([]);
  });

  it("Export gives the lab file back; Share's link opens the same lab in a new page", async () => {
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByTestId("lab-export").click()]);
    expect(download.suggestedFilename()).toBe("two-networks-and-a-router.lab.json");
    const exported = JSON.parse(readFileSync(await download.path(), "utf8"));
    expect(exported).toEqual(lab);

    await page.getByTestId("lab-share").click();
    const link = await page.getByTestId("lab-share-link").inputValue();
    expect(link.startsWith(server.url)).toBe(true);
    expect(decodeLabLink(new URL(link).hash)).toEqual(lab);

    const other = await browser.context.newPage();
    try {
      await other.goto(link);
      await other.getByTestId("lab-panel").waitFor({ timeout: 60_000 });
      expect(await other.evaluate(() => window.tabvisor!.labs!.session!.lab)).toEqual(lab);
      // it builds (the first test saw a link's lab through to the end)
      await other.waitForFunction(() => window.tabvisor!.vms().length === 3, undefined, { timeout: 30_000 });
    } finally {
      await other.close();
    }
  });

  it("Reset lab builds it again from its file: the student's work is gone and the check fails again", async () => {
    await page.getByTestId("lab-reset").click();
    await page.getByTestId("lab-reset-yes").click();
    await page.waitForFunction(() => window.tabvisor?.labs?.session?.build.kind === "building", undefined, { timeout: 10_000 });
    await built();
    expect(await page.getByTestId("check-result-1-0").count()).toBe(0);
    await page.getByTestId("check-1-0").click();
    expect((await result("1-0")).pass).toBe("false");
  });

  it("the lab file follows the dashboard: a VM deleted there leaves the file, and Export has it so", async () => {
    await page.getByTestId("lab-file-toggle").click();
    expect(await page.getByTestId("lab-file").innerText()).toMatch(/"name": "web"/);
    await page.evaluate(() => { const hv = window.tabvisor!.hv!; hv.remove(hv.byName("web")!.id); });
    await expect.poll(() => page.getByTestId("lab-file").innerText()).not.toMatch(/"name": "web"/);
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByTestId("lab-export").click()]);
    const exported = JSON.parse(readFileSync(await download.path(), "utf8")) as Lab;
    expect(exported.vms.map((v) => v.name)).toEqual(["client", "router"]);
    expect(exported.steps![1]).toEqual(lab.steps![1]);
  });

  it("a Kathará lab (three nodes, two collision domains) is imported, built and routes; what it left out is listed", async () => {
    await page.goto("about:blank");
    await page.goto(server.url + "?lab=");
    await page.waitForFunction(() => window.tabvisor?.hv !== undefined, undefined, { timeout: 60_000 });
    const file = (name: string, text: string) => ({ name, mimeType: "text/plain", buffer: Buffer.from(text) });
    await page.getByTestId("lab-open-input").setInputFiles([
      file("lab.conf", 'LAB_NAME="Two LANs and a router"\nr1[0]="A"\nr1[1]="B"\nr1[image]="kathara/base"\npc1[0]=A\npc2[0]=B\n'),
      file("r1.startup", "ifconfig eth0 10.0.1.1/24 up\nip addr add 10.0.2.1/24 dev eth1\nip link set eth1 up\necho 1 > /proc/sys/net/ipv4/ip_forward\n"),
      file("pc1.startup", "ifconfig eth0 10.0.1.10 netmask 255.255.255.0 up\nroute add default gw 10.0.1.1\n"),
      file("pc2.startup", "ip addr add 10.0.2.20/24 dev eth0\nip route add default via 10.0.2.1 dev eth0\n"),
    ]);
    await page.getByTestId("lab-panel").waitFor({ timeout: 30_000 });
    expect(await page.getByTestId("lab-title").innerText()).toBe("Two LANs and a router");
    expect(await page.getByTestId("lab-import-notes").textContent()).toMatch(/1 thing the import left out.*kathara\/base/s);
    await built();
    expect((await page.evaluate(() => window.tabvisor!.vms())).sort()).toEqual(["pc1", "pc2", "r1"]);
    const ping = await page.evaluate(async () => {
      // (on a loaded machine the first echo may go while r1 still resolves pc2's address: one answer proves the route)
      const r = await window.tabvisor!.handleOf("pc1")!.agentExec("ping -c 3 -W 3 10.0.2.20", { timeoutMs: 30_000 });
      return { code: r.exitCode, out: new TextDecoder().decode(r.stdout) };
    });
    expect(ping.out).toMatch(/3 packets transmitted, [123] packets received/);
  });

  it("a containerlab topology is imported and built: its nodes reach each other over their link", async () => {
    const yaml = [
      "name: pair",
      "topology:",
      "  nodes:",
      "    left:",
      "      kind: linux",
      "      image: alpine:3.19",
      '      exec: ["ip addr add 10.9.0.1/24 dev eth1"]',
      "    right:",
      "      kind: linux",
      "      image: alpine:3.19",
      '      exec: ["ip addr add 10.9.0.2/24 dev eth1"]',
      "  links:",
      '    - endpoints: ["left:eth1", "right:eth1"]',
    ].join("\n");
    await page.getByTestId("lab-open-input").setInputFiles({ name: "pair.clab.yml", mimeType: "text/yaml", buffer: Buffer.from(yaml) });
    await expect.poll(() => page.getByTestId("lab-title").innerText(), { timeout: 30_000 }).toBe("pair");
    expect(await page.getByTestId("lab-import-notes").textContent()).toMatch(/alpine:3\.19 left out/);
    await built();
    const ping = await page.evaluate(async () => {
      const r = await window.tabvisor!.handleOf("left")!.agentExec("ping -c 3 -W 3 10.9.0.2", { timeoutMs: 30_000 });
      return new TextDecoder().decode(r.stdout);
    });
    expect(ping).toMatch(/3 packets transmitted, [123] packets received/);
  });

  it("a VM made in the dashboard with two cards on the lab's networks joins the lab file", async () => {
    await page.getByTestId("new-vm").click();
    await page.getByTestId("create-name").fill("probe");
    await page.getByTestId("create-card-0").selectOption("A");
    await page.getByTestId("create-add-card").click();
    await page.getByTestId("create-card-1").selectOption("B");
    await page.getByTestId("create-submit").click();
    await page.waitForFunction(() => window.tabvisor?.vms().includes("probe"));
    await page.getByTestId("lab-file-toggle").click();
    await expect.poll(async () => {
      const file = JSON.parse(await page.getByTestId("lab-file").innerText());
      return file.vms.find((v: { name: string }) => v.name === "probe")?.cards;
    }).toEqual([{ network: "A" }, { network: "B" }]);
  });

  it("a malformed link or lab file is refused with its reason; the page goes on as it was", async () => {
    // (a new document: going to another fragment of the same page would only change its hash)
    await page.goto("about:blank");
    await page.goto(server.url + "#lab=v1.AAAA");
    await page.getByTestId("lab-open-error").waitFor({ timeout: 60_000 });
    expect(await page.getByTestId("lab-open-error").innerText()).toMatch(/^The lab in this link could not be opened: /);
    expect(await page.getByTestId("lab-panel").count()).toBe(0);
    await page.getByTestId("lab-open-error").getByRole("button").click();

    const bad = { ...lab, vms: lab.vms.map((v, i) => (i === 0 ? { ...v, cards: [{ network: "nowhere" }] } : v)) };
    await page.getByTestId("lab-open-input").setInputFiles({ name: "bad.lab.json", mimeType: "application/json", buffer: Buffer.from(JSON.stringify(bad)) });
    await page.getByTestId("lab-open-error").waitFor();
    expect(await page.getByTestId("lab-open-error").innerText()).toMatch(/^bad\.lab\.json is not a lab this page can open:\nvms\[0\]\.cards\[0\]\.network: no network named "nowhere"/);
    expect(await page.evaluate(() => window.tabvisor!.vms())).toEqual([]);
    expect(errors).toEqual([]);
  });
});

describe("a lab in the saved lab's tab (vite dev server, Chromium)", () => {
  let server: Served;
  let browser: Browser;
  beforeAll(async () => {
    server = await startDevServer();
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it("is there after a reload: its networks, every VM's cards, the panel; resumed, its check passes", async () => {
    const page = browser.page;
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    // the saved lab, empty
    await page.goto(server.url + "?lab=");
    await setSavedLab(page, []);
    await page.goto(server.url);
    await page.waitForFunction(() => window.tabvisor?.labs !== undefined, undefined, { timeout: 60_000 });
    await page.getByTestId("lab-open-input").setInputFiles({ name: "router.lab.json", mimeType: "application/json", buffer: Buffer.from(JSON.stringify(theLab())) });
    await page.waitForFunction(() => ["built", "failed"].includes(window.tabvisor?.labs?.session?.build.kind ?? ""), undefined, { timeout: 180_000, polling: 250 });
    expect(await page.evaluate(() => window.tabvisor!.labs!.session!.build)).toEqual({ kind: "built" });
    const topology = () => page.evaluate(() => {
      const hv = window.tabvisor!.hv!;
      const cards = (hv as unknown as { opts: { network: { cardsOf(vm: string): { network: string | null }[] } } }).opts.network;
      return hv.entries.map((e) => `${e.spec.name}: ${cards.cardsOf(e.spec.name).map((c) => c.network).join(",")}`).sort();
    });
    const before = await topology();
    expect(before).toEqual(["client: lan", "router: lan,dmz", "web: dmz"]);
    await page.evaluate(() => window.tabvisor!.autosave!.saveAll());

    await page.reload();
    await page.waitForFunction(() => window.tabvisor?.labs?.session !== undefined && window.tabvisor.vms().length === 3, undefined, { timeout: 60_000 });
    expect(await page.getByTestId("lab-title").innerText()).toBe("Two networks and a router");
    expect(await topology()).toEqual(before);
    // bring the VMs back where they were (their processes go on: the router forwards, the web server serves)
    await expect.poll(() => page.evaluate(() => window.tabvisor!.autosave!.offered.length), { timeout: 30_000 }).toBe(3);
    await page.evaluate(() => window.tabvisor!.autosave!.restoreAll());
    await page.waitForFunction(() => ["client", "router", "web"].every((n) => window.tabvisor!.readyOf(n)), undefined, { timeout: 60_000 });
    await page.getByTestId("check-0-0").click();
    await expect.poll(async () => page.getByTestId("check-result-0-0").getAttribute("data-pass"), { timeout: 60_000 }).toBe("true");
    expect(errors).toEqual([]);
  }, 300_000);
});
