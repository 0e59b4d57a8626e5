// The lab's SSH key (lab-ssh-key.ts): an OpenSSH ed25519 private key file whose base64 body rides on the kernel
// command line as tabvisor.sshkey= (guest/debian/README.md).

import { describe, it, expect } from "vitest";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeLabSshKey } from "../src/lab-ssh-key.ts";

const hasSshKeygen = (() => {
  try { execFileSync("ssh-keygen", ["-?"], { stdio: "ignore" }); return true; } catch (e) { return (e as { status?: number }).status !== undefined && (e as NodeJS.ErrnoException).code !== "ENOENT"; }
})();

describe("lab SSH key", () => {
  it("fits on the kernel command line with the Debian image's other parameters", async () => {
    const k = await makeLabSshKey();
    expect(k.param).toMatch(/^[A-Za-z0-9+/=]+$/);
    const cmdline = `console=ttyS0 root=/dev/vda rw rootwait hostname=${"a".repeat(63)} tabvisor.ip=192.168.100.200/24 ` +
      `tabvisor.gw=192.168.100.1 tabvisor.dns=192.168.100.1 tabvisor.dhcp=wait tabvisor.time=1800000000 tabvisor.sshkey=${k.param}`;
    expect(cmdline.length).toBeLessThan(1024); // COMMAND_LINE_SIZE on riscv
    // the body of the file, lines joined, is the parameter (what the guest's init wraps back)
    expect(k.privateKeyFile.split("\n").slice(1, -2).join("")).toBe(k.param);
    const blob = Buffer.from(k.param, "base64");
    expect(blob.subarray(0, 15).toString("latin1")).toBe("openssh-key-v1\0");
    expect(k.publicKey).toMatch(/^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/]{43} tabvisor-lab$/);
    expect((await makeLabSshKey()).param).not.toBe(k.param);
  });

  it.skipIf(!hasSshKeygen)("is a key file ssh-keygen reads, with the public key it derives", async () => {
    const k = await makeLabSshKey("lab7");
    const dir = mkdtempSync(join(tmpdir(), "labkey-"));
    try {
      const f = join(dir, "id_ed25519");
      writeFileSync(f, k.privateKeyFile, { mode: 0o600 });
      expect(execFileSync("ssh-keygen", ["-y", "-f", f], { encoding: "utf8" }).trim()).toBe(k.publicKey);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
