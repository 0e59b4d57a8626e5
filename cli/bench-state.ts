// `npm run bench:state`: what machine state costs and buys, in host wall time on this machine:
//   - the default VM (256 MiB, as `npm run vm` boots it) at its prompt: snapshot size, save time, restore to a
//     prompt that answers;
//   - a new VM from the template (public/images/template.snap, 64 MiB): start to a prompt that answers;
//   - fork of a 128 MiB VM: the call, and until the copy has its identity;
//   - live migration of an idle 64 MiB VM and of a 128 MiB VM writing memory: the guest's downtime (held at the
//     source, plus the target's adopting the state), the total time, and pages sent per round.
// Each figure is the median of --repeat runs (default 3). Not a test: it prints numbers.
//
//   npm run bench:state [-- --repeat N]

import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { NodeVm, DEFAULT_IMAGES } from "../emulator-core/src/node/vm.ts";

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (x: number) => `${x.toFixed(0)} ms`;

async function booted(opts: ConstructorParameters<typeof NodeVm>[0]): Promise<NodeVm> {
  const vm = new NodeVm({ keepOutput: true, ...opts });
  vm.start();
  await vm.waitFor("@@GUEST_READY@@", 60_000, 0);
  await vm.command("true");
  return vm;
}

async function snapshotFigures(repeat: number): Promise<void> {
  const vm = await booted({});
  const saves: number[] = [];
  let file: Uint8Array = new Uint8Array();
  for (let i = 0; i < repeat; i++) {
    const t = performance.now();
    file = await vm.snapshot();
    saves.push(performance.now() - t);
  }
  vm.stop();
  const restores: number[] = [];
  for (let i = 0; i < repeat; i++) {
    const t = performance.now();
    const back = await NodeVm.restore(file);
    back.start();
    await back.command("true");
    restores.push(performance.now() - t);
    back.stop();
  }
  console.log(`default VM (256 MiB) at its prompt: snapshot ${(file.length / 1048576).toFixed(2)} MB (target < 5 MB), save ${ms(median(saves))}, restore to an answering prompt ${ms(median(restores))} (target < 300 ms)`);
}

async function templateFigures(repeat: number): Promise<void> {
  const template = readFileSync(DEFAULT_IMAGES + "template.snap");
  const times: number[] = [];
  for (let i = 0; i < repeat; i++) {
    const t = performance.now();
    const vm = await NodeVm.fromTemplate(template, { ramMiB: 64, nics: 1, balloon: true, hostname: `t${i}` });
    vm.start();
    await vm.command("true");
    times.push(performance.now() - t);
    vm.stop();
  }
  console.log(`new 64 MiB VM from the template: start to an answering prompt ${ms(median(times))} (target < 300 ms); booting instead: see bench:linux`);
}

async function forkFigures(repeat: number): Promise<void> {
  const vm = await booted({ ramMiB: 128, nics: 1, hostname: "orig" });
  const calls: number[] = [], ready: number[] = [];
  for (let i = 0; i < repeat; i++) {
    const t = performance.now();
    const copy = await vm.fork({ hostname: `copy${i}`, macs: [[0x52, 0x54, 0, 0x12, 0x39, i]] });
    calls.push(performance.now() - t);
    copy.start();
    await copy.waitFor(`@@GUEST_READY@@ hostname=copy${i}`, 20_000, 0);
    ready.push(performance.now() - t);
    copy.stop();
  }
  vm.stop();
  console.log(`fork of a 128 MiB VM: ${ms(median(calls))} until the copy can run (target < 1 s), ${ms(median(ready))} until it has its own name and MAC`);
}

async function migrationFigures(label: string, opts: ConstructorParameters<typeof NodeVm>[0], busy: string | undefined): Promise<void> {
  const vm = await booted(opts);
  if (busy) await vm.command(busy);
  const target = NodeVm.migrationTarget();
  let moved: NodeVm | undefined;
  let heldAt = 0, resumedAt = 0;
  const stats = await vm.migrate(async (m) => {
    if (m.kind === "end") heldAt = performance.now();
    moved = (await target.receive(m)) ?? moved;
    if (m.kind === "end") { moved!.start(); resumedAt = performance.now(); }
  });
  // the guest was held from just before the final state was taken until the target started
  const downtime = stats.heldMs + Math.max(0, resumedAt - heldAt - stats.heldMs);
  await moved!.command("true");
  moved!.stop();
  console.log(`migration of ${label}: downtime ${ms(downtime)} (target < 100 ms for an idle 64 MiB VM), total ${ms(stats.totalMs)}, ` +
    `pages per round ${stats.rounds.join(", ")}, last ${stats.finalPages} pages while held, ${(stats.bytes / 1048576).toFixed(1)} MB sent`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { repeat: { type: "string" } } });
  const repeat = Math.max(1, Number(values.repeat ?? 3));
  await snapshotFigures(repeat);
  await templateFigures(repeat);
  await forkFigures(repeat);
  await migrationFigures("an idle 64 MiB VM", { ramMiB: 64 }, undefined);
  await migrationFigures("a 128 MiB VM rewriting 8 MiB in a loop", { ramMiB: 128 },
    "(head -c 8000000 /dev/zero > /tmp/buf; while :; do cp /tmp/buf /tmp/buf2; done) & true");
  process.exit(0);
}

main().catch((e) => { console.error(`bench:state: ${(e as Error).message}`); process.exit(1); });
