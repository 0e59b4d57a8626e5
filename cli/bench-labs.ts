// `npm run bench:labs`: what opening a lab link costs. For each gallery lab, the share link's length; for each lab
// this machine can run (the Debian ones where the image is built), the time from opening its share link in
// Chromium (the dev server, a fresh page) to the lab built (every VM at its prompt and its setup done), and to
// every VM ready (its guest's ready marker). Numbers, not checks: the tests are web/tests/lab-*.test.ts.
//   npm run bench:labs [-- --only ID]

import { existsSync } from "node:fs";
import { join } from "node:path";
import { startDevServer, launchBrowser, ROOT } from "../web/tests/harness.ts";
import { GALLERY } from "../web/src/labs/gallery/index.ts";
import { encodeLabLink } from "../web/src/labs/share.ts";
import { validateLab } from "../web/src/labs/validate.ts";
import type { Lab } from "../web/src/labs/types.ts";

const only = process.argv.includes("--only") ? process.argv[process.argv.indexOf("--only") + 1] : undefined;
const debian = existsSync(join(ROOT, "public/images/debian/manifest.json"));

console.log("bench:labs: share links");
for (const g of GALLERY) {
  const link = encodeLabLink(g.lab as Lab);
  console.log(`  ${g.id.padEnd(16)} ${String(link.length).padStart(5)} characters (the lab file: ${JSON.stringify(g.lab).length} bytes of JSON)`);
}

const server = await startDevServer();
const browser = await launchBrowser();
try {
  console.log("bench:labs: from opening the link to the lab built (Chromium, dev server)");
  for (const g of GALLERY) {
    if (only && g.id !== only) continue;
    if (g.needsDebian && !debian) { console.log(`  ${g.id.padEnd(16)} skipped: the Debian image is not built (npm run images:debian)`); continue; }
    const r = validateLab(g.lab);
    if (!r.ok) throw new Error(`${g.id} is not valid`);
    const page = await browser.context.newPage();
    const t0 = Date.now();
    await page.goto(server.url + encodeLabLink(g.lab as Lab));
    const names = r.full.vms.map((v) => v.name);
    await page.waitForFunction((n) => n.every((x) => window.tabvisor?.readyOf(x)), names, { timeout: 900_000, polling: 100 });
    const ready = Date.now() - t0;
    await page.waitForFunction(() => ["built", "failed"].includes(window.tabvisor?.labs?.session?.build.kind ?? ""), undefined, { timeout: 900_000, polling: 100 });
    const built = Date.now() - t0;
    const kind = await page.evaluate(() => window.tabvisor!.labs!.session!.build.kind);
    console.log(`  ${g.id.padEnd(16)} ${names.length} VMs: all ready ${(ready / 1000).toFixed(1)} s, lab built ${(built / 1000).toFixed(1)} s${kind === "built" ? "" : " (FAILED to build)"}`);
    await page.close();
  }
} finally {
  await browser.close();
  await server.close();
}
