// The `vm` command as the README shows it: a script piped into the guest's console runs in the guest (none of it
// is lost while the guest boots), and the command exits with the guest's status.

import { describe, it, expect } from "vitest";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";

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
});
