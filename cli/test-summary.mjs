// Prints the plain closing line CI reads ("N passed, N failed, N skipped") from vitest's JSON report.
import { readFileSync } from "node:fs";
let r;
try {
  r = JSON.parse(readFileSync(process.argv[2], "utf8"));
} catch {
  console.log("tests: 0 passed, 1 failed (no test report was written)");
  process.exit(0);
}
const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
