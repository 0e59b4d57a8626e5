// A live time-series chart (uPlot) over a MeterHistory's columns: redrawn when `version` changes (once a second),
// resized with its box. Sparklines drop the axes.

import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export interface ChartSeries {
  label: string;
  color: string;
  values: (number | null)[];
  fill?: boolean;
  dash?: number[];
  width?: number;
}

export interface ChartProps {
  t: number[];
  series: ChartSeries[];
  height: number;
  /** fixed y range; default [0, auto] */
  yMax?: number;
  /** seconds of history shown (default all) */
  window?: number;
  yFmt?: (v: number) => string;
  sparkline?: boolean;
  version: number;
  className?: string;
}

const AXIS = { stroke: "#7d8a97", grid: { stroke: "#1c232c", width: 1 }, ticks: { stroke: "#1c232c", width: 1, size: 3 }, font: "10px system-ui, sans-serif" };

function hexA(hex: string, a: number): string {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${a})`;
}

export function Chart(props: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | undefined>(undefined);
  const latest = useRef(props);
  latest.current = props;

  const data = (p: ChartProps): uPlot.AlignedData => [p.t, ...p.series.map((s) => s.values)] as uPlot.AlignedData;

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
          range: (_u, min, max) => [latest.current.window ? max - latest.current.window : min, max],
        },
        y: { range: (_u, _min, max) => [0, latest.current.yMax ?? (max > 0 ? max * 1.15 : 1)] },
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
    const u = new uPlot(opts, data(p), el);
    plot.current = u;
    const ro = new ResizeObserver(() => {
      const w = el.clientWidth;
      if (w > 0 && Math.abs(w - u.width) >= 1) u.setSize({ width: w, height: latest.current.height });
    });
    ro.observe(el);
    return () => { ro.disconnect(); u.destroy(); plot.current = undefined; };
  }, [key]);

  useEffect(() => {
    const u = plot.current;
    if (!u || document.hidden) return;
    u.setData(data(props));
  }, [props.version, key]);

  return <div ref={box} className={`chart ${props.sparkline ? "sparkline" : ""} ${props.className ?? ""}`} />;
}
