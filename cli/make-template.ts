// `npm run template`: writes public/images/template.snap, the snapshot new VMs of the default shape start from
// instead of booting (emulator-core/src/snapshot/template.ts): the default image booted with tabvisor.template=1
// to an idle shell prompt, waiting for an identity on its agent port. `npm run images` runs it after rebuilding the images.
//
//   npm run template [-- --out FILE]

import { writeFileSync, readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { parseArgs } from "node:util";
import { NodeVm, DEFAULT_IMAGES } from "../emulator-core/src/node/vm.ts";
import { makeSpec } from "../emulator-core/src/machine/description.ts";
import { templateSpecFor, TEMPLATE_WAIT_MARKER } from "../emulator-core/src/snapshot/template.ts";

/** The shape of a new VM in the dashboard (64 MiB, one card, rng, balloon, no disk): what the template fits. */
export const DEFAULT_TEMPLATE_SPEC = makeSpec({ ramMiB: 64, nics: [{ mac: [0x52, 0x54, 0x00, 0, 0, 0x10] }], rng: true, balloon: true });

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { out: { type: "string" } } });
  const out = values.out ?? DEFAULT_IMAGES + "template.snap";
  const vm = new NodeVm({ spec: templateSpecFor(DEFAULT_TEMPLATE_SPEC) });
  vm.start();
  await vm.waitFor(TEMPLATE_WAIT_MARKER, 60_000, 0);
  await vm.waitFor(/template:~# /, 60_000, 0);
  // let the shell and the agent settle in their reads, and the guest go idle
  await new Promise((r) => setTimeout(r, 500));
  const file = await vm.snapshot({ name: "template" });
  vm.stop();
  writeFileSync(out, file);
  const sha256 = createHash("sha256").update(file).digest("hex");
  if (values.out === undefined) {
    const manifestPath = DEFAULT_IMAGES + "manifest.json";
    const manifest = JSON.parse(readFileSync(manifestPath, "utf8"));
    manifest.template = {
      file: "template.snap", size: file.length, sha256,
      shape: "64 MiB, one network card, rng, balloon, no disk", how: "npm run template (cli/make-template.ts)",
    };
    writeFileSync(manifestPath, JSON.stringify(manifest, null, 2) + "\n");
  }
  process.stdout.write(`template: ${out} (${file.length} bytes, sha256 ${sha256})\n`);
  process.exit(0);
}

main().catch((e) => { process.stderr.write(`template: ${(e as Error).message}\n`); process.exit(1); });
