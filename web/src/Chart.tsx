// A live time-series chart (uPlot) over a MeterHistory's columns (live arrays, pushed to in place). It draws
// itself, without React: after news from `source`, once per animation frame at most, only while on screen and the
// page is shown (meters.ts painter), and only when the picture would change: the samples in its window are
// reduced to the pixels they land on (runs of equal height), and an unchanged picture is not drawn again (a
// row of idle VMs' flat CPU lines costs nothing). Resized with its box. Sparklines drop the axes.

import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { painter } from "./meters.ts";

export interface ChartSeries {
  label: string;
  color: string;
  /** the samples (a live array, as long as `t`); or `level`, a constant line */
  values?: (number | null)[];
  level?: () => number;
  fill?: boolean;
  dash?: number[];
  width?: number;
}

export interface ChartProps {
  /** what announces new samples (the hypervisor) */
  source: { subscribe(fn: () => void): () => void };
  t: number[];
  series: ChartSeries[];
  height: number;
  /** fixed y range; default [0, auto] */
  yMax?: number;
  /** the least top of an automatic y range: an idle VM's fractions of a MIPS or its few bytes a second then stay on
   *  the bottom row instead of filling the chart, and an unchanged picture is not drawn again */
  yFloor?: number;
  /** seconds of history shown (default all) */
  window?: number;
  yFmt?: (v: number) => string;
  sparkline?: boolean;
  className?: string;
}

const AXIS = { stroke: "#7d8a97", grid: { stroke: "#1c232c", width: 1 }, ticks: { stroke: "#1c232c", width: 1, size: 3 }, font: "10px system-ui, sans-serif" };

function hexA(hex: string, a: number): string {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${a})`;
}

const seriesValues = (s: ChartSeries, t: number[]): (number | null)[] => s.values ?? t.map(s.level ?? (() => 0));

const START_STEP = 8;

/** The time axis moves on in steps, not with every sample (the step is aligned to the clock, so charts of the same
 *  window step together): a chart whose history has any shape in it would otherwise scroll, and be drawn again, with
 *  every sample. A step is a twentieth of the chart's window (15 s for the meters' 5 minutes, 6 s for the cards' 2),
 *  at least X_STEP_S: the same few pixels of movement whatever the window, and a chart of a long window is drawn as
 *  seldom as it needs. Samples newer than the right edge's last step are drawn as they come, where they change the
 *  picture. */
export const X_STEP_S = 5;

export function xStep(window: number | undefined): number {
  return window ? Math.max(X_STEP_S, window / 20) : X_STEP_S;
}

/** The right edge of the time axis for samples up to tMax (unix seconds). */
export function xEdge(tMax: number, window?: number): number {
  const step = xStep(window);
  return Math.ceil(tMax / step) * step;
}

/** The top of the y range: yMax, or the samples' largest plus some room, at least yFloor. */
export function yTop(max: number, yMax: number | undefined, yFloor: number | undefined): number {
  return yMax ?? Math.max(yFloor ?? 0, max > 0 ? max * 1.15 : 1);
}

/** The picture a chart would draw, as text: per series the runs of samples that land on the same pixel row, each
 *  with the pixel column it starts at (the first run's start is clipped to the window, and counted in steps of
 *  START_STEP px); and the y scale. Two samplings with the same picture draw the same pixels (but for the first
 *  START_STEP px of a line that does not fill its window yet). */
export function picture(t: number[], series: (number | null)[][], widthPx: number, heightPx: number, window: number | undefined, yMax: number | undefined, yFloor?: number): string {
  const n = t.length;
  if (n === 0) return "empty";
  const tMax = xEdge(t[n - 1], window);
  const tMin = window ? tMax - window : t[0];
  const span = Math.max(1e-9, tMax - tMin);
  let first = 0;
  while (first < n - 1 && t[first + 1] <= tMin) first++;
  let max = 0;
  for (const vs of series) for (let i = first; i < n; i++) { const v = vs[i]; if (v !== null && v !== undefined && v > max) max = v; }
  const top = yTop(max, yMax, yFloor);
  // an auto scale's labels change with its top: the top counts (to 2 significant digits)
  let out = yMax === undefined ? `${top.toPrecision(2)}:` : "";
  for (const vs of series) {
    let row = NaN;
    for (let i = first; i < n; i++) {
      const v = vs[i];
      const r = v === null || v === undefined ? -1 : Math.round((v / top) * heightPx);
      if (r !== row) {
        let col = Math.max(0, Math.round(((t[i] - tMin) / span) * widthPx));
        // the start of a line still growing into its window moves a pixel or so a second: it counts in steps of
        // START_STEP px (a flat line of a young VM is not drawn again every second for it)
        if (row !== row) col -= col % START_STEP;
        out += `${r}@${col},`;
        row = r;
      }
    }
    out += "|";
  }
  return out;
}

export function Chart(props: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const latest = useRef(props);
  latest.current = props;

  // Built once per set of series (labels); data and size change in place.
  const key = props.series.map((s) => s.label + s.color).join("|") + (props.sparkline ? "s" : "") + props.height;
  useEffect(() => {
    const el = box.current!;
    const p = latest.current;
    const yFmt = p.yFmt ?? ((v: number) => String(v));
    const opts: uPlot.Options = {
      width: Math.max(40, el.clientWidth),
      height: p.height,
      padding: p.sparkline ? [2, 0, 0, 0] : [6, 6, 0, 0],
      legend: { show: false },
      cursor: { show: false },
      select: { show: false, left: 0, top: 0, width: 0, height: 0 },
      scales: {
        x: {
          time: true,
          range: (_u, min, max) => {
            const w = latest.current.window;
            return [w ? xEdge(max, w) - w : min, xEdge(max, w)];
          },
        },
        y: { range: (_u, _min, max) => [0, yTop(max, latest.current.yMax, latest.current.yFloor)] },
      },
      axes: p.sparkline
        ? [{ show: false }, { show: false }]
        : [{ ...AXIS, size: 20, space: 60 }, { ...AXIS, size: 44, space: 24, values: (_u, vals) => vals.map((v) => yFmt(v)) }],
      series: [
        {},
        ...p.series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: s.width ?? (p.sparkline ? 1.25 : 1.5),
          fill: s.fill ? hexA(s.color, 0.18) : undefined,
          dash: s.dash,
          points: { show: false },
          spanGaps: false,
        })),
      ],
    };
    const columns = () => latest.current.series.map((s) => seriesValues(s, latest.current.t));
    // uPlot keeps the arrays it is given: it gets copies, so the live columns can grow under it
    const data = (cols: (number | null)[][]): uPlot.AlignedData => [latest.current.t.slice(), ...cols.map((c) => c.slice())] as uPlot.AlignedData;
    const first = columns();
    const u = new uPlot(opts, data(first), el);
    let shown = picture(latest.current.t, first, u.width, p.height, p.window, p.yMax, p.yFloor) + u.width;
    const ro = new ResizeObserver(() => {
      const w = el.clientWidth;
      if (w > 0 && Math.abs(w - u.width) >= 1) u.setSize({ width: w, height: latest.current.height });
    });
    ro.observe(el);
    const remove = painter.add(el, {
      draw: () => {
        const q = latest.current;
        const cols = columns();
        const now = picture(q.t, cols, u.width, q.height, q.window, q.yMax, q.yFloor) + u.width;
        if (now === shown) return;
        shown = now;
        const wk = `chart:${q.series.map((s) => s.label).join("+")}`;
        painter.writes[wk] = (painter.writes[wk] ?? 0) + 1;
        u.setData(data(cols));
      },
    });
    painter.watch(p.source);
    return () => { remove(); ro.disconnect(); u.destroy(); };
  }, [key]);

  return <div ref={box} className={`chart ${props.sparkline ? "sparkline" : ""} ${props.className ?? ""}`} />;
}
