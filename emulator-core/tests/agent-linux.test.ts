// The control channel with a real guest: the default image's tabvisor-agent (guest/agent) behind Linux's
// virtio_console driver, driven through NodeVm.agent. Commands with their status, output and time limit; files in
// and out with matching sha256; an agent that stops answering gives "no answer" and nothing hangs; an agent that
// restarts is noticed; a VM started from the template has its agent too.

import { describe, it, expect, afterAll } from "vitest";
import { readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { NodeVm } from "../src/node/vm.ts";
import { AgentError, AgentNoAnswer } from "../src/agent/client.ts";
import { pattern } from "./virtio-driver.ts";

const vms: NodeVm[] = [];
afterAll(() => { for (const vm of vms) vm.stop(); });
const dec = new TextDecoder();
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

async function boot(hostname: string): Promise<NodeVm> {
  const vm = new NodeVm({ hostname, ramMiB: 160 }).start();
  vms.push(vm);
  await vm.waitFor(`${hostname}:~# `, 60_000);
  await vm.agent.hello(10_000);
  return vm;
}

describe("the guest agent over the control channel", () => {
  let vm: NodeVm;

  it("answers hello, and runs commands with their exit status, stdout and stderr apart", async () => {
    vm = await boot("agent1");
    expect(vm.agent.agentVersion).toMatch(/^tabvisor-agent \d+$/);
    const r = await vm.agent.exec("echo out; echo err >&2; hostname; exit 7");
    expect(dec.decode(r.stdout)).toBe("out\nagent1\n");
    expect(dec.decode(r.stderr)).toBe("err\n");
    expect([r.exitCode, r.signal, r.timedOut]).toEqual([7, 0, false]);
    // commands run side by side: a slow one does not hold up a quick one
    const slow = vm.agent.exec("sleep 2; echo slow");
    const quick = await vm.agent.exec("echo quick");
    expect(dec.decode(quick.stdout)).toBe("quick\n");
    expect(dec.decode((await slow).stdout)).toBe("slow\n");
    // a command that leaves a daemon holding its output still ends
    const bg = await vm.agent.exec("sleep 30 & echo started", { timeoutMs: 10_000 });
    expect(dec.decode(bg.stdout)).toBe("started\n");
    expect(bg.exitCode).toBe(0);
  }, 120_000);

  it("kills a command at its time limit, with everything it started", async () => {
    const t0 = performance.now();
    const r = await vm.agent.exec("sh -c 'sleep 60' & sleep 60; echo never", { timeoutMs: 1500 });
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect(r.timedOut).toBe(true);
    expect(r.signal).toBe(9);
    expect(dec.decode(r.stdout)).toBe("");
    // its process group is gone: no sleep 60 left
    const ps = await vm.agent.exec("ps -o args | grep -c '^sleep 60' || true");
    expect(dec.decode(ps.stdout).trim()).toBe("0");
  }, 60_000);

  it("puts a file in and gets it back with the same sha256; errors come back as messages", async () => {
    const data = pattern(6 << 20, 11);
    await vm.agent.putFile("/root/uploads/data.bin", data, { mode: 0o600 });
    const guestSum = dec.decode((await vm.agent.exec("sha256sum /root/uploads/data.bin; stat -c %a /root/uploads/data.bin")).stdout);
    expect(guestSum).toBe(`${sha(data)}  /root/uploads/data.bin\n600\n`);
    // no partial file was left beside it
    expect(dec.decode((await vm.agent.exec("ls /root/uploads")).stdout)).toBe("data.bin\n");
    const back = await vm.agent.getFile("/root/uploads/data.bin");
    expect(sha(back)).toBe(sha(data));
    const missing = await vm.agent.getFile("/root/nothing-here").catch((e) => e);
    expect(missing).toBeInstanceOf(AgentError);
    expect((missing as Error).message).toMatch(/No such file or directory/);
    await expect(vm.agent.getFile("/root")).rejects.toThrow(/Is a directory/);
    await expect(vm.agent.putFile("/proc/version", new Uint8Array(10))).rejects.toThrow(AgentError);
    // /proc files say they are empty, so a get of one is empty (exec cat reads them)
    expect(dec.decode(await vm.agent.getFile("/proc/sys/kernel/hostname"))).toBe("");
  }, 120_000);

  it("says 'no answer' when the agent is stuck, and works again when it is not; notices a restart", async () => {
    const pid = dec.decode((await vm.agent.exec("pidof tabvisor-agent")).stdout).trim();
    expect(pid).toMatch(/^\d+$/);
    vm.send(`kill -STOP ${pid}\n`);
    await new Promise((r) => setTimeout(r, 500));
    await expect(vm.agent.exec("echo hi", { timeoutMs: 500, graceMs: 1000 })).rejects.toThrow(AgentNoAnswer);
    vm.send(`kill -CONT ${pid}\n`);
    expect(dec.decode((await vm.agent.exec("echo back")).stdout)).toBe("back\n");
    // killed: what it had in hand fails; busybox init starts a new one, which answers what comes next
    const pending = vm.agent.exec("sleep 20", { timeoutMs: 30_000 });
    await new Promise((r) => setTimeout(r, 300));
    vm.send(`kill -KILL ${pid}\n`);
    await expect(pending).rejects.toThrow(/agent stopped/);
    const newPid = dec.decode((await vm.agent.exec("pidof tabvisor-agent")).stdout).trim();
    expect(newPid).not.toBe(pid);
  }, 120_000);

  it("is there in a VM started from the template", async () => {
    const template = readFileSync(new URL("../../public/images/template-vm.snap", import.meta.url));
    const t = await NodeVm.fromTemplate(template, { hostname: "agent2", ramMiB: 256 });
    vms.push(t);
    t.start();
    await t.agent.hello(20_000);
    expect(dec.decode((await t.agent.exec("hostname")).stdout)).toBe("agent2\n");
  }, 120_000);
});
