// A VM's console: xterm.js, fitted to its box (refitted when the window or the layout changes), with
// Ctrl-Shift-C / Ctrl-Shift-V for copy and paste besides the browser's own copy and paste.

import { useEffect, useRef } from "react";
import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import "@xterm/xterm/css/xterm.css";
import type { VmHandle } from "./vm-handle.ts";

/** The whole terminal text (scrollback and screen), one string per row, trailing blanks trimmed. */
export function terminalText(term: Terminal): string {
  const buf = term.buffer.active;
  const lines: string[] = [];
  for (let i = 0; i < buf.length; i++) lines.push(buf.getLine(i)?.translateToString(true) ?? "");
  while (lines.length && lines[lines.length - 1] === "") lines.pop();
  return lines.join("\n");
}

export function Console({ vm, onTerminal }: { vm: VmHandle; onTerminal?: (t: Terminal | undefined) => void }) {
  const box = useRef<HTMLDivElement>(null);

  useEffect(() => {
    const el = box.current!;
    const term = new Terminal({
      cursorBlink: false, // a blinking cursor repaints the page twice a second
      scrollback: 5000,
      fontFamily: '"DejaVu Sans Mono", "Cascadia Mono", Menlo, Consolas, monospace',
      fontSize: 14,
      lineHeight: 1.15, // room for underscores below the baseline
      theme: { background: "#101418", foreground: "#d8dee4" },
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(el);
    const refit = () => { try { fit.fit(); } catch { /* not laid out yet */ } };
    refit();

    term.attachCustomKeyEventHandler((e) => {
      if (e.type !== "keydown" || !e.ctrlKey || !e.shiftKey || e.altKey || e.metaKey) return true;
      const key = e.key.toLowerCase();
      if (key === "c") {
        const sel = term.getSelection();
        if (sel) void navigator.clipboard?.writeText(sel).catch(() => document.execCommand("copy"));
        e.preventDefault();
        return false;
      }
      if (key === "v") {
        // the browser's own paste (Ctrl-V, the context menu) reaches xterm as a paste event by itself
        void navigator.clipboard?.readText().then((t) => term.paste(t)).catch(() => {});
        e.preventDefault();
        return false;
      }
      return true;
    });

    const onData = term.onData((d) => vm.sendInput(d));
    const onBinary = term.onBinary((d) => vm.sendInput(Uint8Array.from(d, (c) => c.charCodeAt(0) & 0xff)));
    vm.attachConsole({ write: (data, done) => term.write(data, done) });

    const ro = new ResizeObserver(() => refit());
    ro.observe(el);
    window.addEventListener("resize", refit);
    term.focus();
    onTerminal?.(term);
    return () => {
      onTerminal?.(undefined);
      ro.disconnect();
      window.removeEventListener("resize", refit);
      vm.attachConsole(undefined);
      onData.dispose();
      onBinary.dispose();
      term.dispose();
    };
  }, [vm]);

  return <div className="console" ref={box} data-testid="console" />;
}
