// The page's open lab (LabShell's LabHolder): opened from a file's text, a share link or a value; an open that
// fails leaves the page as it was and keeps the reason for the page to show.

import { parseLabText, formatLabError } from "../labs/validate.ts";
import { decodeLabLink } from "../labs/share.ts";
import { LabSession, type SnippetSink } from "./session.ts";
import type { LabHost } from "./runner.ts";
import type { LabHolder } from "./LabShell.tsx";

export class PageLabs implements LabHolder {
  session: LabSession | undefined;
  error: string | undefined;
  version = 0;
  private readonly listeners = new Set<() => void>();

  /** remember: the saved lab's tab (the open lab is kept across visits) */
  constructor(private readonly host: LabHost, private readonly sink: SnippetSink, private readonly remember: boolean) {}

  subscribe = (fn: () => void): (() => void) => { this.listeners.add(fn); return () => this.listeners.delete(fn); };
  private changed(): void { this.version++; for (const fn of this.listeners) fn(); }

  /** The lab open at the last visit (the saved lab's tab), shown again without building it (its VMs are kept). */
  async restore(): Promise<void> {
    if (!this.remember) return;
    const s = await LabSession.restore(this.host, this.sink);
    if (s && !this.session) { this.session = s; this.changed(); }
  }

  openText(text: string, source: string): void {
    const r = parseLabText(text);
    if (!r.ok) { this.fail(`${source} is not a lab this page can open:\n${r.errors.map(formatLabError).join("\n")}`); return; }
    this.open(new LabSession(r.lab, r.full, this.host, this.sink, this.remember));
  }

  /** Opens the lab a share link's fragment holds. */
  openLink(hash: string): void {
    let value: unknown;
    try {
      value = decodeLabLink(hash);
    } catch (e) {
      this.fail(`The lab in this link could not be opened: ${(e as Error).message}`);
      return;
    }
    this.openText(JSON.stringify(value), "The link's lab");
  }

  private open(s: LabSession): void {
    if (this.session?.build.kind === "building") { this.fail("A lab is being built: wait for it before opening another."); return; }
    this.session?.close();
    this.session = s;
    this.error = undefined;
    this.changed();
    void s.start();
  }

  private fail(why: string): void {
    this.error = why;
    this.changed();
  }

  dismissError(): void { this.error = undefined; this.changed(); }

  close(): void {
    this.session?.close();
    this.session = undefined;
    this.changed();
  }
}
