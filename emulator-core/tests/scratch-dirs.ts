// Scratch folders for a test file: made in the system's temporary folder, removed after the file's tests ran (a
// test run leaves nothing behind in /tmp).

import { afterAll } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Call at a test file's top level: a maker of folders (named prefix + random) that go after the file's tests. */
export function scratchDirs(): (prefix: string) => string {
  const dirs: string[] = [];
  afterAll(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });
  return (prefix) => {
    const d = mkdtempSync(join(tmpdir(), prefix));
    dirs.push(d);
    return d;
  };
}
