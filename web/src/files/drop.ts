// Files dragged from the desktop onto a part of the dashboard that takes them (a VM's console or its tab): the
// handlers that accept the drop there and keep it from the page's own drop (which opens snapshot files).

import type { DragEvent } from "react";

const hasFiles = (ev: DragEvent) => Array.from(ev.dataTransfer?.types ?? []).includes("Files");

/** Props for an element that takes dropped files; `over` is told while files are dragged over it. */
export function fileDrop(onFiles: ((files: File[]) => void) | undefined, over?: (on: boolean) => void) {
  if (!onFiles) return {};
  return {
    onDragOver: (ev: DragEvent) => {
      if (!hasFiles(ev)) return;
      ev.preventDefault();
      ev.stopPropagation();
      ev.dataTransfer.dropEffect = "copy";
      over?.(true);
    },
    onDragLeave: (ev: DragEvent) => { if (ev.currentTarget === ev.target || !ev.relatedTarget) over?.(false); },
    onDrop: (ev: DragEvent) => {
      if (!hasFiles(ev)) return;
      ev.preventDefault();
      ev.stopPropagation();
      over?.(false);
      onFiles(Array.from(ev.dataTransfer.files));
    },
  };
}
