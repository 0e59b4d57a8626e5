// A VM worker's end of the control channel: the AgentClient (emulator-core/src/agent/client.ts) of whichever machine
// the VM runs now. A restore or a migration swaps the machine; the client of the old one fails what it had in hand
// ("the VM's machine was replaced") and a new one talks to the new machine's port. Calls made while the VM has no
// machine, or one without an agent channel, fail at once with a message the page can show.

import type { Machine } from "../../emulator-core/src/machine/machine.ts";
import { AgentClient, AgentNoAnswer, type ExecOptions, type ExecResult } from "../../emulator-core/src/agent/client.ts";

/** Progress of a file going in or out, reported as VmEvent "transfer". */
export type TransferProgress = (done: number, total: number) => void;

export class VmAgent {
  private client: AgentClient | undefined;
  private machine: Machine | undefined;

  /** wake: rings the VM's run loop (a request for a guest asleep in WFI); notRunning: why the guest cannot answer
   *  now (powered off, paused), or undefined when it can. */
  constructor(private readonly wake: () => void, private readonly notRunning: () => string | undefined) {}

  /** The VM runs `m` from now on (undefined: none). */
  bind(m: Machine | undefined): void {
    if (m === this.machine) return;
    this.client?.close("the VM's machine was replaced (restore, reset or migration)");
    this.client = undefined;
    this.machine = m;
  }

  /** The guest stopped (powered off, crashed, migrated away): what it had in hand fails. The machine stays bound
   *  (a power-on boots it again in place). */
  stopped(reason: string): void {
    this.client?.close(reason);
    this.client = undefined;
  }

  /** requests in flight: their time limits are timers of the worker's, which its idle loop must not sleep through
   *  for long (VmHost's sleep) */
  private calls = 0;
  get busy(): boolean { return this.calls > 0; }

  private async counted<T>(call: () => Promise<T>): Promise<T> {
    this.calls++;
    try { return await call(); } finally { this.calls--; }
  }

  exec(command: string, opts?: ExecOptions): Promise<ExecResult> {
    return this.counted(() => this.use().exec(command, opts));
  }

  put(path: string, data: Uint8Array, mode: number | undefined, progress?: TransferProgress): Promise<void> {
    return this.counted(() => this.use().putFile(path, data, { mode, onProgress: progress }));
  }

  get(path: string, maxBytes: number | undefined, progress?: TransferProgress): Promise<Uint8Array> {
    return this.counted(() => this.use().getFile(path, { maxBytes, onProgress: progress }));
  }

  private use(): AgentClient {
    const m = this.machine;
    const why = this.notRunning();
    if (why) throw new AgentNoAnswer(why);
    if (!m || m.halted) throw new AgentNoAnswer("the VM is not running");
    const port = m.agentChannel;
    if (!port) throw new AgentNoAnswer("this VM has no agent channel (a machine saved before it existed)");
    return (this.client ??= new AgentClient(port, this.wake));
  }
}
