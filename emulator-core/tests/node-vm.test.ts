// NodeVm with the real guest: a guest `reboot` starts the same machine over in place (its clock the host's at each
// boot), and console input sent
// before the guest can read it (a script piped into the CLI during boot) waits for it and arrives whole.

import { describe, it, expect, afterEach } from "vitest";
import { NodeVm } from "../src/node/vm.ts";

const vms: NodeVm[] = [];
afterEach(() => { for (const vm of vms.splice(0)) vm.stop(); });
function boot(opts: ConstructorParameters<typeof NodeVm>[0] = {}): NodeVm {
  const vm = new NodeVm({ ramMiB: 128, ...opts });
  vms.push(vm);
  return vm;
}

describe("NodeVm", () => {
  it("reboots in place when the guest runs reboot, back to a working shell, without ending run()", async () => {
    const vm = boot({ hostname: "again", nics: 1 });
    let ended = false;
    const running = vm.run().then((status) => { ended = true; return status; });
    await vm.waitFor("@@GUEST_READY@@", 60_000, 0);
    await vm.command("true", 30_000);
    await vm.command("echo before-reboot > /tmp/mark");
    // the board has no RTC: the guest's init set its clock from the host's time on the command line (tabvisor.time=)
    const clockSkew = async () => Number(await vm.command("date +%s")) - Date.now() / 1000;
    expect(Math.abs(await clockSkew())).toBeLessThan(5);
    const memory = vm.machine.hart.memory;
    const nic = vm.nics[0];

    const from = vm.output.length;
    vm.send("reboot\n");
    const second = await vm.waitFor(/@@GUEST_READY@@[^\n]*\n/, 60_000, from);
    expect(second).toContain("hostname=again");
    await vm.command("true", 30_000);
    expect(await vm.command("uname -m")).toContain("riscv64");
    expect(Math.abs(await clockSkew())).toBeLessThan(5);
    // a clean start: the tmpfs file of the first boot is gone
    expect(await vm.command("cat /tmp/mark 2>&1 || echo no-$((1+1))-mark")).toContain("no-2-mark");
    expect(vm.machine.reboots).toBe(1);
    expect(vm.machine.hart.memory).toBe(memory); // the same WebAssembly.Memory
    expect(vm.nics[0]).toBe(nic); // and the same devices
    expect(ended).toBe(false);

    vm.send("poweroff\n");
    expect(await running).toBe(0);
  });

  it("holds console input sent during boot until the guest reads it, and loses none of it", async () => {
    const vm = boot();
    // sent before the machine has run one instruction: 1000 lines (about 13 KB, several batches), then a result
    const lines = Array.from({ length: 1000 }, () => "n=$((n+1))\n").join("");
    vm.send(`n=0\n${lines}echo "count-$n-of-$((1000))"\n`);
    vm.start();
    const out = await vm.waitFor(/count-\d+-of-1000/, 120_000, 0);
    expect(out).toMatch(/count-1000-of-1000/);
  });

  it("holds the guest while its console's consumer is behind (onConsole returned false) and goes on, losing nothing, once it drains", async () => {
    let behind = false;
    let whileBehind = 0;
    let drained: () => void = () => {};
    const vm = boot({
      onConsole: (bytes) => { if (behind) whileBehind += bytes.length; return !behind; },
      whenConsoleDrained: () => new Promise<void>((resolve) => { drained = resolve; }),
    });
    vm.start();
    await vm.waitFor("@@GUEST_READY@@", 60_000, 0);
    await vm.command("true", 30_000);
    const from = vm.output.length;
    behind = true;
    vm.send("seq 1 30000; echo SEQ-$((40+2))-DONE\n");
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    await sleep(2500);
    const first = whileBehind;
    await sleep(2500);
    // held: what came after the consumer fell behind is what that one slice wrote, then nothing more
    expect(first).toBeGreaterThan(0);
    expect(first).toBeLessThan(32_768);
    expect(whileBehind).toBe(first);
    expect(vm.output.slice(from)).not.toContain("SEQ-42-DONE");
    behind = false;
    drained();
    const out = await vm.waitFor("SEQ-42-DONE", 120_000, from);
    const numbers = out.split(/\r?\n/).filter((l) => /^\d+$/.test(l)).map(Number);
    expect(numbers.length).toBe(30000);
    expect(numbers.every((n, i) => n === i + 1)).toBe(true);
    vm.send("poweroff\n");
  }, 180_000);
});
