// Boots the real guest image (public/images) in Node and drives its shell: the machine issue's acceptance tests.

import { describe, it, expect, afterEach } from "vitest";
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { NodeVm, connectCable, VmConfigError } from "../src/node/vm.ts";

const vms: NodeVm[] = [];
/** the tests' scratch folders (disk images, broken files), removed after each test */
const dirs: string[] = [];
const scratch = (prefix: string) => { const d = mkdtempSync(join(tmpdir(), prefix)); dirs.push(d); return d; };
afterEach(async () => {
  const stopping = vms.splice(0);
  for (const vm of stopping) vm.stop();
  // (a stopped VM closes its disk file; one whose emulator failed never says it exited: at most 5 s)
  await Promise.race([Promise.all(stopping.map((vm) => vm.exited)), new Promise((r) => setTimeout(r, 5000))]);
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function boot(opts: ConstructorParameters<typeof NodeVm>[0]): NodeVm {
  const vm = new NodeVm({ ramMiB: 128, ...opts }).start();
  vms.push(vm);
  return vm;
}

describe("a Linux guest in Node", () => {
  it("boots to a shell, uses a virtio disk, computes, and powers off", async () => {
    const dir = scratch("tv-linux-");
    const disk = join(dir, "disk.img");
    writeFileSync(disk, new Uint8Array(16 * 1024 * 1024));
    const vm = boot({ disk, hostname: "testvm" });
    await vm.waitFor("@@GUEST_READY@@", 60_000, 0);
    await vm.command("true", 30_000); // the shell is up and answering

    expect(await vm.command("uname -m")).toContain("riscv64");
    expect(await vm.command("cat /proc/cpuinfo")).toMatch(/isa\s*:\s*rv64imafdc/);
    expect(await vm.command("hostname")).toContain("testvm");

    expect(await vm.command("mkfs.ext2 -q /dev/vda && mount /dev/vda /mnt && echo mounted", 60_000)).toContain("mounted");
    await vm.command("echo persistent-$((40+2)) > /mnt/hello.txt && sync");
    expect(await vm.command("cat /mnt/hello.txt")).toContain("persistent-42");
    // a computation whose answer the guest cannot just echo back: sha256 of 1 MiB of zeros
    expect(await vm.command("dd if=/dev/zero bs=1024 count=1024 2>/dev/null | sha256sum", 60_000))
      .toContain("30e14955ebf1352266dc2ff8067e68104607e750abb9d3b36582b8af909fcb58");
    await vm.command("umount /mnt && echo unmounted", 30_000);

    vm.send("poweroff\n");
    expect(await vm.exited).toBe(0);
    expect(vm.machine.haltReason).toBe("powered off");
    // the file reached the disk image on the host
    expect(readFileSync(disk).includes(Buffer.from("persistent-42"))).toBe(true);
    // and the host's own ext2 tools agree the guest made a valid filesystem, where they are installed
    try {
      const listing = execFileSync("debugfs", ["-R", "cat /hello.txt", disk], { stdio: ["ignore", "pipe", "ignore"] }).toString();
      expect(listing).toContain("persistent-42");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
  });

  it("joins two VMs with a virtio-net cable: one serves a page with httpd, the other fetches it with wget", async () => {
    const a = boot({ hostname: "server", nics: 1, append: "console=ttyS0 hostname=server tabvisor.ip=10.0.0.1/24" });
    const b = boot({ hostname: "client", nics: 1, append: "console=ttyS0 hostname=client tabvisor.ip=10.0.0.2/24" });
    connectCable({ nic: a.nics[0], vm: a }, { nic: b.nics[0], vm: b });
    await Promise.all([a.waitFor("@@GUEST_READY@@", 60_000, 0), b.waitFor("@@GUEST_READY@@", 60_000, 0)]);
    await Promise.all([a.command("true", 30_000), b.command("true", 30_000)]);
    await a.command("mkdir -p /www && echo served-by-$(hostname) > /www/index.html && httpd -h /www && echo started");
    const out = await b.command("wget -q -O - http://10.0.0.1/", 60_000);
    expect(out).toContain("served-by-server");
    expect(await b.command("ping -c 2 10.0.0.1", 30_000)).toMatch(/2 packets transmitted, 2 (packets )?received/);
    expect(a.nics[0].txPackets).toBeGreaterThan(0);
    expect(b.nics[0].rxPackets).toBeGreaterThan(0);
  });

  it("halts a guest whose kernel panics (a truncated initramfs) with status 3 and the panic message", async () => {
    const dir = scratch("tv-panic-");
    const truncated = join(dir, "initrd.gz");
    const real = readFileSync(new URL("../../public/images/initramfs.cpio.gz", import.meta.url));
    writeFileSync(truncated, real.subarray(0, real.length >> 2));
    const vm = boot({ initrd: truncated });
    expect(await vm.exited).toBe(3);
    expect(vm.machine.haltReason).toMatch(/^Kernel panic - not syncing/);
  });

  it("refuses bad input with a one-line message", () => {
    const dir = scratch("tv-bad-");
    const junk = join(dir, "junk");
    writeFileSync(junk, new Uint8Array(4096).fill(0x5a));
    const expectError = (opts: ConstructorParameters<typeof NodeVm>[0], re: RegExp) => {
      let err: unknown;
      try { new NodeVm(opts); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(VmConfigError);
      expect((err as Error).message).toMatch(re);
      expect((err as Error).message).not.toContain("\n");
    };
    expectError({ kernel: join(dir, "missing") }, /cannot read the kernel .*no such file/);
    expectError({ kernel: junk }, /not a RISC-V Linux Image/);
    expectError({ initrd: junk }, /initrd is neither a cpio archive nor gzip/);
    expectError({ disk: join(dir, "missing.img") }, /cannot open the disk/);
    expectError({ ramMiB: 8 }, /too little/);
  });
});
