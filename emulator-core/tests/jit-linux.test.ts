// Linux with the JIT on (milestone 2): the guest image boots to its shell with hot blocks compiled after 32
// executions from its first instruction (a machine's JIT otherwise starts after the first part of its boot), and commands that exercise compiled code (a shell loop, sha256 over a MiB, process creation, which
// loads new code into pages and makes the kernel execute FENCE.I) give the right answers.

import { afterEach, describe, expect, it } from "vitest";
import { NodeVm } from "../src/node/vm.ts";

const vms: NodeVm[] = [];
afterEach(() => { for (const vm of vms.splice(0)) vm.stop(); });

describe("a Linux guest with the JIT on", () => {
  it("boots to a shell and runs commands", async () => {
    const vm = new NodeVm({ ramMiB: 128, hostname: "jitvm", jit: true, jitThreshold: 32, jitStartAfter: 0 }).start();
    vms.push(vm);
    await vm.waitFor("@@GUEST_READY@@", 60_000, 0);
    await vm.command("true", 30_000);
    expect(await vm.command("hostname")).toContain("jitvm");
    expect(await vm.command("i=0; s=0; while [ $i -lt 300 ]; do s=$((s+i*i)); i=$((i+1)); done; echo sum=$s")).toContain("sum=8955050");
    expect(await vm.command("dd if=/dev/zero bs=1024 count=1024 2>/dev/null | sha256sum", 60_000))
      .toContain("30e14955ebf1352266dc2ff8067e68104607e750abb9d3b36582b8af909fcb58");
    expect(await vm.command("for i in 1 2 3 4 5; do echo $i | md5sum; done | sort -u | wc -l")).toMatch(/\b5\b/);
    const jit = vm.machine.hart.jit!;
    expect(jit.stats.compiled).toBeGreaterThan(100);
    vm.send("poweroff\n");
    expect(await vm.exited).toBe(0);
  });
});
