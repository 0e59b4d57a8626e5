// The page's open lab (LabShell's LabHolder): opened from a file's text, a share link or a value; an open that
// fails leaves the page as it was and keeps the reason for the page to show.

import { parseLabText, formatLabError } from "../labs/validate.ts";
import { decodeLabLink } from "../labs/share.ts";
import { importKathara } from "../labs/import-kathara.ts";
import { importContainerlab } from "../labs/import-containerlab.ts";
import { LabSession, type SnippetSink } from "./session.ts";
import type { LabHost } from "./runner.ts";
import type { LabHolder } from "./LabShell.tsx";
import { labFromPage, type PageView } from "./from-page.ts";
import type { Lab } from "../labs/types.ts";

/** Where the page's own state comes from (PageLabHost). */
export interface PageSource {
  view(): PageView;
  subscribe(fn: () => void): () => void;
}

export class PageLabs implements LabHolder {
  session: LabSession | undefined;
  error: string | undefined;
  version = 0;
  private readonly listeners = new Set<() => void>();

  /** remember: the saved lab's tab (the open lab is kept across visits) */
  constructor(private readonly host: LabHost & PageSource, private readonly sink: SnippetSink, private readonly remember: boolean) {}

  /** The lab file of the page as it is now: the open lab's, following the dashboard's edits (from-page.ts), or a
   *  new one describing the page's VMs and networks. */
  currentLab(): Lab { return labFromPage(this.host.view(), this.session?.lab); }
  /** Told when the page's VMs, cards or networks change. */
  subscribePage = (fn: () => void): (() => void) => this.host.subscribe(fn);

  /** the gallery is shown (no lab open): on asking (the Labs button), or when the address says ?labs */
  gallery = typeof location !== "undefined" && new URLSearchParams(location.search).has("labs");

  showGallery(on: boolean): void { this.gallery = on; this.changed(); }

  subscribe = (fn: () => void): (() => void) => { this.listeners.add(fn); return () => this.listeners.delete(fn); };
  private changed(): void { this.version++; for (const fn of this.listeners) fn(); }

  /** The lab open at the last visit (the saved lab's tab), shown again without building it (its VMs are kept). */
  async restore(): Promise<void> {
    if (!this.remember) return;
    const s = await LabSession.restore(this.host, this.sink);
    if (s && !this.session) { this.session = s; this.changed(); }
  }

  openText(text: string, source: string, notes: string[] = []): void {
    const r = parseLabText(text);
    if (!r.ok) { this.fail(`${source} is not a lab this page can open:\n${r.errors.map(formatLabError).join("\n")}`); return; }
    this.open(new LabSession(r.lab, r.full, this.host, this.sink, this.remember, notes));
  }

  /** Opens files chosen or dropped: a lab file (.json); a Kathará lab (lab.conf with its .startup files and
   *  folders, by their paths inside the lab's folder); or a containerlab topology (.yml/.yaml). An import says
   *  what it left out. */
  openFiles(files: { name: string; text: string }[]): void {
    const conf = files.find((f) => /(^|\/)lab\.conf$/.test(f.name));
    try {
      if (conf) {
        const root = conf.name.slice(0, conf.name.length - "lab.conf".length);
        const map: Record<string, string> = {};
        for (const f of files) if (f.name.startsWith(root)) map[f.name.slice(root.length)] = f.text;
        const r = importKathara(map);
        this.openText(JSON.stringify(r.lab), "The Kathará lab", r.notes.map((n) => `Kathará import: ${n}`));
        return;
      }
      const yaml = files.find((f) => /\.ya?ml$/i.test(f.name));
      if (yaml) {
        const r = importContainerlab(yaml.text);
        this.openText(JSON.stringify(r.lab), `The containerlab topology ${yaml.name}`, r.notes.map((n) => `containerlab import: ${n}`));
        return;
      }
    } catch (e) {
      this.fail(`${conf ? "The Kathará lab" : "The containerlab topology"} could not be imported: ${(e as Error).message}`);
      return;
    }
    const json = files.filter((f) => /\.json$/i.test(f.name));
    if (json.length !== 1) { this.fail("Open one lab file (.json), a Kathará lab's folder (lab.conf and its files) or a containerlab topology (.yml)."); return; }
    this.openText(json[0].text, json[0].name);
  }

  /** Opens a lab given as a value (a gallery lab). */
  openValue(value: unknown, source: string): void { this.openText(JSON.stringify(value), source); }

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
