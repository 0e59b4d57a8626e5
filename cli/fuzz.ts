// Fuzzes the hart with random bare-metal programs (emulator-core/src/fuzz/program.ts): each seed's program runs to
// its end, which must come through tohost (a pass, or a clean "failed" after too many traps), a fatal stop or the
// timeout, within the time limit, with no exception on the host and memory that stays bounded. Prints what it ran
// and every seed that broke a rule (replay one with --seeds N-N).
//
//   npm run fuzz -- [--seeds 1-200] [--instructions 2000] [--timeout-ms 2000]

import { parseArgs } from "node:util";
import { fuzzCampaign, parseSeeds } from "../emulator-core/src/fuzz/campaign.ts";
import { loadHartModule } from "../emulator-core/src/node/hart-module.ts";

const { values } = parseArgs({ options: { seeds: { type: "string" }, instructions: { type: "string" }, "timeout-ms": { type: "string" } } });
let seeds: { from: number; to: number };
try {
  seeds = parseSeeds(values.seeds ?? "1-200");
} catch (e) {
  process.stderr.write(`fuzz: ${(e as Error).message}\n`);
  process.exit(2);
}
const instructions = Number(values.instructions ?? 2000);
const timeoutMs = Number(values["timeout-ms"] ?? 2000);
if (!Number.isSafeInteger(instructions) || instructions < 0 || !(timeoutMs > 0)) {
  process.stderr.write("fuzz: --instructions takes a whole number, --timeout-ms a positive one\n");
  process.exit(2);
}
const report = fuzzCampaign(loadHartModule(), { ...seeds, instructions, timeoutMs, onFailure: (f) => process.stdout.write(`seed ${f.seed}: ${f.problem}\n`) });
const statuses = Object.entries(report.statuses).map(([k, v]) => `${k} ${v}`).join(", ");
process.stdout.write(`${report.runs} programs of ${instructions} random instructions (seeds ${seeds.from}-${seeds.to}): ` +
  `${(report.executed / 1e6).toFixed(1)}M instructions executed in ${(report.hostMs / 1000).toFixed(1)} s; ends: ${statuses}; ` +
  `memory grew ${(report.rssGrowth / 1048576).toFixed(0)} MiB; ${report.failures.length} broke a rule\n`);
process.exit(report.failures.length === 0 ? 0 : 1);
