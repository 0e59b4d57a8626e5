// The `vm` command as the README shows it: a script piped into the guest's console runs in the guest (none of it
// is lost while the guest boots), and the command exits with the guest's status.

import { describe, it, expect } from "vitest";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { copyFileSync, readFileSync, rmSync, statSync, truncateSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { scratchDirs } from "./scratch-dirs.ts";

const scratch = scratchDirs();

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

function sh(command: string, timeoutMs = 90_000): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile("sh", ["-c", command], { cwd: ROOT, timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const status = err ? (typeof err.code === "number" ? err.code : null) : 0;
      resolve({ status, stdout, stderr });
    });
  });
}

/** what `uname -a` prints in the guest */
const UNAME = /Linux tabvisor 6\.1\.\d+ #1 SMP .* riscv64 GNU\/Linux/;

describe("the vm command", () => {
  it("runs the README's example: printf 'uname -a\\npoweroff\\n' | node --import tsx cli/vm.ts", async () => {
    const r = await sh("printf 'uname -a\\npoweroff\\n' | node --import tsx cli/vm.ts");
    expect(r.stdout).toMatch(UNAME);
    // it started from the committed template (public/images/template-vm.snap), which fits this build
    expect(r.stderr).not.toMatch(/template does not fit/);
    expect(r.stdout).toContain("reboot: Power down");
    expect(r.status).toBe(0);
  });

  it("does the same through the tabvisor bin (npx tabvisor vm), with the options of npm run vm", async () => {
    const r = await sh("printf 'uname -a\\ncat /proc/cmdline\\npoweroff\\n' | node cli/tabvisor.mjs vm --mem 96 --hostname bin-test");
    expect(r.stdout).toMatch(/Linux bin-test 6\.1\.\d+ .* riscv64/);
    expect(r.stdout).toContain("console=ttyS0 hostname=bin-test");
    expect(r.status).toBe(0);
  });

  it("ends with status 3 and says so when --timeout-ms passes first", async () => {
    const r = await sh("node cli/tabvisor.mjs vm --timeout-ms 300 < /dev/null");
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/vm: timed out after 300 ms/);
  });

  it("says how to use it when the command is missing", async () => {
    const r = await sh("node cli/tabvisor.mjs");
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/usage: tabvisor vm/);
  });

  it("saves a snapshot on Ctrl-A s (bytes 0x01 0x73 in a pipe) and starts from it with --restore", async () => {
    const dir = scratch("tabvisor-cli-snap-");
    const snap = join(dir, "s.snap");
    const save = await sh(`(printf 'echo one > /tmp/x; echo WROTE\\n'; sleep 3; printf '\\001s'; sleep 2; printf 'poweroff\\n') | node cli/tabvisor.mjs vm --mem 96 --snapshot ${snap}`);
    expect(save.stdout).toContain("WROTE");
    expect(save.stderr).toMatch(new RegExp(`snapshot saved: ${snap} \\(\\d+ bytes\\)`));
    expect(save.status).toBe(0);
    const back = await sh(`printf 'cat /tmp/x\\npoweroff\\n' | node cli/tabvisor.mjs vm --restore ${snap}`);
    expect(back.stdout).toMatch(/\r?\none\r?\n/);
    expect(back.status).toBe(0);
  });

  it("refuses a file that is not a snapshot, or a missing one, with one line and status 2", async () => {
    const dir = scratch("tabvisor-cli-bad-");
    writeFileSync(join(dir, "bad.snap"), "hello");
    const r = await sh(`node cli/tabvisor.mjs vm --restore ${join(dir, "bad.snap")} < /dev/null`);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/vm: .*bad\.snap: this is not a Tabvisor snapshot/);
    const missing = await sh(`node cli/tabvisor.mjs vm --restore ${join(dir, "nope.snap")} < /dev/null`);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/cannot read the snapshot .*no such file/);
  });
});

describe("the template's cache (cli/template-cache.ts: the default VM starts from the decoded state it keeps)", () => {
  it("gives what the file holds, from the cache on the next start, and opens the file again when it or the cache changed", async () => {
    const { openTemplate, templateCacheFiles } = await import("../../cli/template-cache.ts");
    const { openSnapshot } = await import("../src/snapshot/snapshot.ts");
    const { encodeState } = await import("../src/snapshot/codec.ts");
    const dir = scratch("tabvisor-template-cache-");
    const path = join(dir, "template-vm.snap");
    copyFileSync(join(ROOT, "public/images/template-vm.snap"), path);
    const { stateFile, keyFile } = templateCacheFiles(path);
    const expected = await openSnapshot(readFileSync(path));
    const same = async (p: ReturnType<typeof openTemplate>) => {
      const t = await p!;
      expect(t.spec).toEqual(expected.spec);
      expect(Buffer.compare(encodeState(t.state), encodeState(expected.state))).toBe(0);
    };
    const written = () => { const st = statSync(stateFile); return `${st.ino}:${st.mtimeMs}`; };
    try {
      await same(openTemplate(path)); // from the file; the cache is made
      const made = written();
      await same(openTemplate(path)); // from the cache: not made again
      expect(written()).toBe(made);

      truncateSync(stateFile, 1000); // a damaged cache: the file is opened and the cache made again
      await same(openTemplate(path));
      expect(statSync(stateFile).size).toBe(expected.header.stateBytes);

      const before = written();
      const later = new Date(statSync(path).mtimeMs + 5000);
      utimesSync(path, later, later); // a template changed since: opened again
      await same(openTemplate(path));
      expect(written()).not.toBe(before);

      expect(openTemplate(join(dir, "missing.snap"))).toBeUndefined();
    } finally {
      rmSync(stateFile, { force: true });
      rmSync(keyFile, { force: true });
    }
  });
});
