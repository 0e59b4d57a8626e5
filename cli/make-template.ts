// `npm run template`: writes the snapshots new VMs start from instead of booting (emulator-core/src/snapshot/
// template.ts): the default image booted with tabvisor.template=1 to an idle shell prompt, waiting for an identity
// on its agent port. Two shapes: public/images/template.snap for the dashboard's new VMs (64 MiB, one card, rng,
// balloon) and public/images/template-vm.snap for `npm run vm` / `npx tabvisor vm` without options (256 MiB, rng).
// `npm run images` runs it after rebuilding the images.
//
//   npm run template

import { writeFileSync, readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { parseArgs } from "node:util";
import { NodeVm, DEFAULT_IMAGES } from "../emulator-core/src/node/vm.ts";
import { makeSpec, type MachineSpec } from "../emulator-core/src/machine/description.ts";
import { templateSpecFor, TEMPLATE_WAIT_MARKER } from "../emulator-core/src/snapshot/template.ts";

/** The templates: file name, the shape it fits, and how a manifest describes it. */
const TEMPLATES = [
  { key: "template", file: "template.snap", spec: makeSpec({ ramMiB: 64, nics: [{ mac: [0x52, 0x54, 0x00, 0, 0, 0x10] }], rng: true, balloon: true }),
    shape: "64 MiB, one network card, rng, balloon, no disk (a new VM in the dashboard)" },
  { key: "vmTemplate", file: "template-vm.snap", spec: makeSpec({ ramMiB: 256, rng: true }),
    shape: "256 MiB, rng (npm run vm without options)" },
];

async function make(spec: MachineSpec, out: string): Promise<Uint8Array> {
  const vm = new NodeVm({ spec: templateSpecFor(spec) });
  vm.start();
  await vm.waitFor(TEMPLATE_WAIT_MARKER, 60_000, 0);
  await vm.waitFor(/template:~# /, 60_000, 0);
  // let the shell and the agent settle in their reads, and the guest go idle
  await new Promise((r) => setTimeout(r, 500));
  const file = await vm.snapshot({ name: "template" });
  vm.stop();
  writeFileSync(out, file);
  return file;
}

async function main(): Promise<void> {
  parseArgs({ options: {} });
  const manifestPath = DEFAULT_IMAGES + "manifest.json";
  const manifest = JSON.parse(readFileSync(manifestPath, "utf8"));
  for (const t of TEMPLATES) {
    const file = await make(t.spec, DEFAULT_IMAGES + t.file);
    const sha256 = createHash("sha256").update(file).digest("hex");
    manifest[t.key] = { file: t.file, size: file.length, sha256, shape: t.shape, how: "npm run template (cli/make-template.ts)" };
    process.stdout.write(`template: ${t.file} (${file.length} bytes, sha256 ${sha256})\n`);
  }
  writeFileSync(manifestPath, JSON.stringify(manifest, null, 2) + "\n");
  process.exit(0);
}

main().catch((e) => { process.stderr.write(`template: ${(e as Error).message}\n`); process.exit(1); });
