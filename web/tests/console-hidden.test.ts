// A VM never waits for its console to be drawn (issue 13): the same output runs as fast with the page hidden (the
// worker keeps what the page does not take) as shown, and the console shows its end when the page shows again.

import { describe, it, expect, beforeAll, afterAll } from "vitest";
import type { Page } from "playwright-core";
import { openEmptyLab } from "./harness.ts";
import { setHidden } from "./page-visibility.ts";
import { loadavg } from "node:os";

// The issue asks for `seq 1 2000000`; in this guest that takes minutes whatever the page does (busybox seq costs
// about 40-70 µs of guest CPU per line, and each line is a write() to the tty that costs the guest kernel a serial
// interrupt: 150-300 µs a line through the emulated 16550 in all), so the test prints SEQ_LINES lines, which keeps
// both runs within about a minute. (At 14 bytes or less per line that is under the worker's 4 MiB backlog: no
// output is dropped, so no "output skipped" mark here; vm-host.test.ts drops and marks with a small backlog.)
const SEQ_LINES = 50_000;

describe("energy: a console not drawn does not slow its VM (Chromium)", () => {
  let lab: Awaited<ReturnType<typeof openEmptyLab>>;
  let page: Page;
  const VM = "seqvm";

  beforeAll(async () => {
    lab = await openEmptyLab();
    page = lab.page;
    expect(await page.evaluate((n) => window.tabvisor!.create({ name: n, ramMiB: 64 }), VM)).toBeUndefined();
    await page.waitForFunction((n) => window.tabvisor!.readyOf(n) && new RegExp(`^${n}:~# `, "m").test(window.tabvisor!.textOf(n)),
      VM, { timeout: 60_000, polling: 250 });
  });

  afterAll(async () => {
    await lab?.close();
  });

  const text = () => page.evaluate((n) => window.tabvisor!.textOf(n), VM);
  const agent = (cmd: string) => page.evaluate(([n, c]) => window.tabvisor!.handleOf(n)!.agentExec(c).then((r) => new TextDecoder().decode(r.stdout)), [VM, cmd] as const);

  /** Runs `seq 1 SEQ_LINES` at the console; the guest times it (its clock follows the host's) and writes the
   *  seconds to /tmp/seq-<tag>, read through the agent (not the console, which a hidden page does not take). */
  async function seqRun(tag: string): Promise<number> {
    await page.evaluate(([n, line]) => window.tabvisor!.handleOf(n)!.sendInput(line), [VM,
      `a=$(cut -d' ' -f1 /proc/uptime); seq 1 ${SEQ_LINES}; b=$(cut -d' ' -f1 /proc/uptime); echo "$a $b" > /tmp/seq-${tag}; echo "seq-$((6*7))-${tag}"\n`] as const);
    let got = "";
    await expect.poll(async () => (got = (await agent(`cat /tmp/seq-${tag} 2>/dev/null`)).trim()), { timeout: 150_000, interval: 500 }).toMatch(/^\d+\.\d+ \d+\.\d+$/);
    const [a, b] = got.split(" ").map(Number);
    return b - a;
  }

  it(`prints seq 1 ${SEQ_LINES} as fast hidden as shown (within 1.5x), and shows the end of it when shown again`, async () => {
    const shownS = await seqRun("shown");
    await expect.poll(text, { timeout: 30_000 }).toMatch(new RegExp(`^${SEQ_LINES}\\n(?:.*\\n)?seq-42-shown$`, "m"));
    await setHidden(page, true);
    const hiddenS = await seqRun("hidden");
    // hidden, the console took none of it
    expect(await text()).not.toMatch(/seq-42-hidden/);
    console.log(`seq 1 ${SEQ_LINES} at the console: ${shownS.toFixed(2)} s shown, ${hiddenS.toFixed(2)} s hidden (load ${loadavg()[0].toFixed(2)})`);
    expect(hiddenS).toBeLessThan(1.5 * shownS);
    await setHidden(page, false);
    await expect.poll(text, { timeout: 60_000 }).toMatch(new RegExp(`^${SEQ_LINES}\\n(?:.*\\n)?seq-42-hidden$`, "m"));
    // the end of the output is there, in order
    const t = await text();
    const tail = t.slice(t.lastIndexOf(`${SEQ_LINES - 3}\n`));
    expect(tail).toMatch(new RegExp(`^${SEQ_LINES - 3}\\n${SEQ_LINES - 2}\\n${SEQ_LINES - 1}\\n${SEQ_LINES}\\n`));
  });
});
