// Fuzzes the hart with random bare-metal programs (emulator-core/src/fuzz/program.ts): each seed's program runs to
// its end, which must come through tohost (a pass, or a clean "failed" after too many traps), a fatal stop or the
// timeout, within the time limit, with no exception on the host and memory that stays bounded. Prints what it ran
// and every seed that broke a rule (replay one with --seeds N-N).
//
// With --virtio, fuzzes the virtio devices instead: each seed is a round of a hostile driver running as an S-mode
// guest on the whole machine (emulator-core/src/fuzz/virtio-program.ts, virtio-campaign.ts) against the disk, network
// card, rng, balloon and agent channel (virtio-console), held to the same rules and to the virtio ones (no device
// error but the guest-error path, no disk access outside the image, every device recovers after a reset).
//
//   npm run fuzz -- [--seeds 1-200] [--instructions 2000] [--timeout-ms 2000]
//   npm run fuzz -- --virtio [--seeds 1-200] [--actions 2000] [--timeout-ms 2000]

import { parseArgs } from "node:util";
import { fuzzCampaign, parseSeeds } from "../emulator-core/src/fuzz/campaign.ts";
import { virtioCampaign } from "../emulator-core/src/fuzz/virtio-campaign.ts";
import { loadHartModule } from "../emulator-core/src/node/hart-module.ts";

const { values } = parseArgs({
  options: {
    seeds: { type: "string" }, instructions: { type: "string" }, "timeout-ms": { type: "string" },
    virtio: { type: "boolean" }, actions: { type: "string" },
  },
});
let seeds: { from: number; to: number };
try {
  seeds = parseSeeds(values.seeds ?? "1-200");
} catch (e) {
  process.stderr.write(`fuzz: ${(e as Error).message}\n`);
  process.exit(2);
}
const count = (v: string | undefined, dflt: number) => (v === undefined ? dflt : /^\d+$/.test(v.trim()) ? Number(v) : NaN);
const instructions = count(values.instructions, 2000);
const actions = count(values.actions, 2000);
const timeoutMs = Number(values["timeout-ms"] ?? 2000);
if (!Number.isSafeInteger(instructions) || !Number.isSafeInteger(actions) || !(timeoutMs > 0)) {
  process.stderr.write("fuzz: --instructions and --actions take a whole number, --timeout-ms a positive one\n");
  process.exit(2);
}
const onFailure = (f: { seed: number; problem: string }) => process.stdout.write(`seed ${f.seed}: ${f.problem}\n`);

if (values.virtio) {
  const r = await virtioCampaign(loadHartModule(), { ...seeds, actions, timeoutMs, onFailure });
  const ends = Object.entries(r.ends).map(([k, v]) => `${k} ${v}`).join(", ");
  process.stdout.write(`${r.rounds} hostile virtio rounds of ${actions} actions (seeds ${seeds.from}-${seeds.to}): ` +
    `${r.executed} actions executed in ${(r.hostMs / 1000).toFixed(1)} s; ends: ${ends}; ` +
    `${r.failedDuring} devices driven into NEEDS_RESET, ${r.needsResetAtEnd} still in it at the end, ${r.recovered} of them recovered after a reset; ` +
    `memory grew ${(r.rssGrowth / 1048576).toFixed(0)} MiB; ${r.failures.length} broke a rule\n`);
  const w = r.work;
  process.stdout.write(`device work: blk ${w.blkDone} requests done and ${w.blkErrors} answered with an error, net ${w.netTx} frames sent and ${w.netRx} received, ` +
    `rng ${w.rngRequests} requests, balloon ${w.balloonRequests} requests; console: the host sent ${w.consoleSent} bytes (${w.consoleRefused} sends refused while full), ` +
    `${w.consoleRx} bytes reached the guest's buffers, the guest wrote ${w.consoleTx} bytes, ${w.consoleGot} of them to the host, the port opened ${w.consoleOpens} times\n`);
  const kinds = Object.entries(r.byKind).map(([k, c]) => `${k} ${c.failedDuring}/${c.needsResetAtEnd}/${c.recovered}`).join(", ");
  process.stdout.write(`NEEDS_RESET per device (during rounds / at their end / recovered): ${kinds}\n`);
  if (process.env.FUZZ_REASONS) {
    for (const [k, v] of [...r.reasons].sort((a, b) => b[1] - a[1])) process.stdout.write(`  ${v}\t${k}\n`);
  }
  process.exit(r.failures.length === 0 ? 0 : 1);
}

const report = fuzzCampaign(loadHartModule(), { ...seeds, instructions, timeoutMs, onFailure });
const statuses = Object.entries(report.statuses).map(([k, v]) => `${k} ${v}`).join(", ");
process.stdout.write(`${report.runs} programs of ${instructions} random instructions (seeds ${seeds.from}-${seeds.to}): ` +
  `${(report.executed / 1e6).toFixed(1)}M instructions executed in ${(report.hostMs / 1000).toFixed(1)} s; ends: ${statuses}; ` +
  `memory grew ${(report.rssGrowth / 1048576).toFixed(0)} MiB; ${report.failures.length} broke a rule\n`);
process.exit(report.failures.length === 0 ? 0 : 1);
