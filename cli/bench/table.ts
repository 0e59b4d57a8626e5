/** A plain-text table: the first row is the header; the first leftCols columns are left-aligned, the rest (figures)
 *  right-aligned. */
export function table(rows: string[][], leftCols = 1): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length)));
  const fmt = (r: string[]) =>
    r.map((cell, c) => (c < leftCols ? (cell ?? "").padEnd(widths[c]) : (cell ?? "").padStart(widths[c]))).join("  ").trimEnd();
  return [fmt(rows[0]), widths.map((w) => "-".repeat(w)).join("  "), ...rows.slice(1).map(fmt)].join("\n");
}
