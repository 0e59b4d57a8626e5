// One VM's console for the life of the VM: an xterm.js Terminal and the element it draws in. The dashboard shows
// and hides it (tabs, split view) but never recreates it, so scrollback and terminal state survive switching; it is
// disposed only with its VM. A terminal that is not on screen still takes in everything the guest writes (and
// marks itself unread); xterm draws it when it shows again.
//
// Copy and paste: select with the mouse, Ctrl-Shift-C copies; Ctrl-Shift-V (or the browser's paste) pastes into
// the guest.

import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import "@xterm/xterm/css/xterm.css";
import type { ConsoleSink, VmHandle } from "./vm-handle.ts";

/** The whole terminal text (scrollback and screen), one string per row, trailing blanks trimmed. */
export function terminalText(term: Terminal): string {
  const buf = term.buffer.active;
  const lines: string[] = [];
  for (let i = 0; i < buf.length; i++) lines.push(buf.getLine(i)?.translateToString(true) ?? "");
  while (lines.length && lines[lines.length - 1] === "") lines.pop();
  return lines.join("\n");
}

export class ConsoleHost {
  readonly term: Terminal;
  /** the terminal's own element; the dashboard moves it into whichever pane shows the VM */
  readonly element: HTMLDivElement;
  private readonly fit = new FitAddon();
  private opened = false;
  private visible = false;
  private handle: VmHandle | undefined;
  private readonly ro: ResizeObserver;
  private io: IntersectionObserver | undefined;
  /** the terminal is on screen (our IntersectionObserver says so; see refit) */
  private onScreen = false;
  private disposed = false;
  private followEnd = true;
  /** output arrived while the console was not on screen */
  unread = false;
  /** called when `unread` changes */
  onUnreadChange: (() => void) | undefined;
  /** called with every chunk of output the console takes in (tests measure echo latency with it) */
  onOutput: ((bytes: Uint8Array) => void) | undefined;

  constructor() {
    this.element = document.createElement("div");
    this.element.className = "term-host";
    this.term = new Terminal({
      cursorBlink: false, // a blinking cursor repaints the page twice a second
      scrollback: 5000,
      fontFamily: '"DejaVu Sans Mono", "Cascadia Mono", Menlo, Consolas, monospace',
      fontSize: 13,
      lineHeight: 1.15, // room for underscores below the baseline
      theme: { background: "#0d1117", foreground: "#d8dee4", cursor: "#7ee787", selectionBackground: "#2d4f7c" },
    });
    this.term.loadAddon(this.fit);
    this.term.attachCustomKeyEventHandler((e) => this.keys(e));
    this.term.onData((d) => this.handle?.sendInput(d));
    this.term.onBinary((d) => this.handle?.sendInput(Uint8Array.from(d, (c) => c.charCodeAt(0) & 0xff)));
    this.ro = new ResizeObserver(() => this.refit());
    this.ro.observe(this.element);
  }

  /** Makes `handle` this console's VM (a crashed worker's successor takes over the same console). */
  attach(handle: VmHandle): void {
    this.handle?.attachConsole(undefined);
    this.handle = handle;
    const sink: ConsoleSink = {
      write: (data, done) => {
        this.onOutput?.(data);
        if (!this.visible && !this.unread) { this.unread = true; this.onUnreadChange?.(); }
        this.term.write(data, done);
      },
    };
    handle.attachConsole(sink);
  }

  /** Puts the terminal into `parent` (opening it there the first time). */
  mount(parent: HTMLElement): void {
    if (this.disposed) return;
    if (this.element.parentElement !== parent) parent.appendChild(this.element);
    if (!this.opened) {
      this.term.open(this.element);
      this.opened = true;
      // Created after xterm's own observer (in open), so on the same change ours is told second: xterm has
      // resumed rendering by then, and a resize applies at once. A terminal resized while xterm considers it
      // hidden only applies the new size when it shows again, and its scroll area is left with the old height
      // (the view then sticks some lines above the end). So sizes are only fitted while on screen.
      this.io = new IntersectionObserver((entries) => {
        this.onScreen = entries[entries.length - 1].isIntersecting;
        if (this.onScreen) this.refit();
      }, { threshold: 0 });
      this.io.observe(this.element);
    }
    this.refit();
  }

  unmount(parent: HTMLElement): void {
    if (this.element.parentElement === parent) parent.removeChild(this.element);
  }

  setVisible(v: boolean): void {
    if (v === this.visible) { if (v) this.markRead(); return; }
    const buf = this.term.buffer.active;
    // a console shown at its end stays at its end, whatever arrived (and however the size changed) meanwhile
    if (!v) this.followEnd = buf.viewportY >= buf.baseY;
    this.visible = v;
    if (v) {
      this.markRead();
      requestAnimationFrame(() => {
        this.refit();
        if (this.followEnd) this.term.scrollToBottom();
      });
    }
  }

  get isVisible(): boolean { return this.visible; }

  private markRead(): void {
    if (!this.unread) return;
    this.unread = false;
    this.onUnreadChange?.();
  }

  focus(): void { if (this.opened) this.term.focus(); }

  refit(): void {
    if (!this.opened || !this.onScreen || this.element.clientWidth === 0 || this.element.clientHeight === 0) return;
    const buf = this.term.buffer.active;
    const atEnd = buf.viewportY >= buf.baseY;
    try { this.fit.fit(); } catch { /* not laid out yet */ }
    if (atEnd) this.term.scrollToBottom();
  }

  text(): string { return terminalText(this.term); }

  /** The last `n` non-empty lines (what a crashed VM's card shows). */
  lastLines(n: number): string[] {
    return this.text().split("\n").filter((l) => l.trim() !== "").slice(-n);
  }

  private keys(e: KeyboardEvent): boolean {
    if (e.type !== "keydown" || !e.ctrlKey || !e.shiftKey || e.altKey || e.metaKey) return true;
    const key = e.key.toLowerCase();
    if (key === "c") {
      const sel = this.term.getSelection();
      if (sel) void navigator.clipboard?.writeText(sel).catch(() => document.execCommand("copy"));
      e.preventDefault();
      return false;
    }
    if (key === "v") {
      // the browser's own paste (Ctrl-V, the context menu) reaches xterm as a paste event by itself
      void navigator.clipboard?.readText().then((t) => this.term.paste(t)).catch(() => {});
      e.preventDefault();
      return false;
    }
    return true;
  }

  dispose(): void {
    this.disposed = true;
    this.handle?.attachConsole(undefined);
    this.handle = undefined;
    this.ro.disconnect();
    this.io?.disconnect();
    this.element.remove();
    this.term.dispose();
  }
}
