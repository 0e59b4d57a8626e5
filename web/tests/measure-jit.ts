// Not a test: the JIT's speed through the page in Chromium (issue 14), beside the interpreter's. One VM of 256 MiB at
// a time in the production build, on an empty lab; for each tier, in host wall time: its boot (from create to its
// prompt) and the steps of `npm run bench:linux` typed into its console (a shell loop, hashing 32 MiB from a pipe,
// gzipping 4 MB), each timed from typing the line to its end marker in the page's copy of the console.
//   node --import tsx web/tests/measure-jit.ts [--loop N]        (npm run bench:jit-page)

import { startPreviewServer, launchBrowser, consoleCommand } from "./harness.ts";
import { loadavg } from "node:os";
import { createHash } from "node:crypto";

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
};
const LOOP = arg("--loop", 200000);

const STEPS: { title: string; cmd: string; expect: RegExp }[] = [
  { title: `shell loop ${LOOP}`, cmd: `i=0; while [ $i -lt ${LOOP} ]; do i=$((i+1)); done; echo $i`, expect: new RegExp(`^${LOOP}$`, "m") },
  {
    title: "dd 32M | sha256sum", cmd: "dd if=/dev/zero bs=1M count=32 2>/dev/null | sha256sum",
    expect: new RegExp(`^${createHash("sha256").update(Buffer.alloc(32 << 20)).digest("hex")}`, "m"),
  },
  { title: "urandom 4M, gzip | wc", cmd: "head -c 4000000 /dev/urandom > /tmp/r; gzip -c /tmp/r | wc -c", expect: /^40\d{5}$/m },
];

const server = await startPreviewServer();
const browser = await launchBrowser();
const { page } = browser;
const results = new Map<string, Map<string, number>>();
let failed = false;
try {
  for (const jit of [false, true]) {
    const tier = jit ? "JIT" : "interpreter";
    const times = new Map<string, number>();
    results.set(tier, times);
    await page.goto(server.url + "?lab="); // an empty lab, not saved
    await page.waitForFunction(() => window.tabvisor?.hv !== undefined, undefined, { timeout: 60_000 });
    const name = jit ? "jit" : "interp";
    const t0 = performance.now();
    const refused = await page.evaluate(([nm, j]) => window.tabvisor!.create({ name: nm as string, ramMiB: 256, jit: j as boolean }), [name, jit] as const);
    if (refused) throw new Error(`the VM was refused: ${refused}`);
    await page.waitForFunction((nm) => new RegExp(`^${nm}:~# `, "m").test(window.tabvisor!.textOf(nm)), name, { timeout: 120_000, polling: 20 });
    times.set("boot to prompt", (performance.now() - t0) / 1000);
    console.log(`${tier}: boot to prompt ${times.get("boot to prompt")!.toFixed(2)} s`);
    for (const step of STEPS) {
      const t1 = performance.now();
      const out = await consoleCommand(page, name, step.cmd, 300_000);
      const s = (performance.now() - t1) / 1000;
      if (!step.expect.test(out)) {
        console.log(`${tier}: ${step.title}: wrong output:\n${out.slice(-400)}`);
        failed = true;
      }
      times.set(step.title, s);
      console.log(`${tier}: ${step.title} ${s.toFixed(2)} s`);
    }
  }
  const titles = ["boot to prompt", ...STEPS.map((s) => s.title)];
  const w = Math.max(...titles.map((t) => t.length));
  console.log(`\nthrough the page (Chromium, production build), seconds; load average at the end ${loadavg()[0].toFixed(2)}`);
  console.log(`${"step".padEnd(w)}  interpreter     JIT  JIT/interp`);
  for (const t of titles) {
    const i = results.get("interpreter")!.get(t)!, j = results.get("JIT")!.get(t)!;
    console.log(`${t.padEnd(w)}  ${i.toFixed(2).padStart(11)}  ${j.toFixed(2).padStart(6)}  ${(j / i).toFixed(2).padStart(9)}x`);
  }
} finally {
  await browser.close();
  await server.close();
}
process.exit(failed ? 1 : 0);
