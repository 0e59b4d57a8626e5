// What an idle VM's meters show, and when a chart would be drawn again (issue 13: a page at rest draws nothing). Every
// change of a figure or a chart's picture is a frame of the browser's (style, layout, paint, composite); an idle VM's
// figures and a flat chart must not change from one second's sample to the next.

import { describe, it, expect } from "vitest";
import { fmtPct, fmtMips } from "../src/meters.ts";
import { picture, xEdge, xStep, X_STEP_S } from "../src/Chart.tsx";

describe("an idle VM's figures", () => {
  it("read the same whether a second's sample is zero or a few hundredths", () => {
    // an idle guest's worker sleeps through some seconds (0) and wakes for a timer tick in others (0.03)
    for (const p of [0, 0.03, 0.2, 0.49]) expect(fmtPct(p)).toBe("<1");
    for (const m of [0, 0.01, 0.5, 0.94]) expect(fmtMips(m)).toBe("<1");
    // a busy VM's figures are as before
    expect(fmtPct(0.5)).toBe("1");
    expect(fmtPct(37.4)).toBe("37");
    expect(fmtMips(1.5)).toBe("1.5");
    expect(fmtMips(5.24)).toBe("5.2");
    expect(fmtMips(240.4)).toBe("240");
  });
});

describe("a chart's time axis", () => {
  it("steps a twentieth of its window, at least X_STEP_S, aligned to the clock", () => {
    expect(xStep(300)).toBe(15);
    expect(xStep(120)).toBe(6);
    expect(xStep(60)).toBe(X_STEP_S);
    expect(xStep(undefined)).toBe(X_STEP_S);
    expect(xEdge(1000, 300)).toBe(1005);
    expect(xEdge(1005, 300)).toBe(1005);
    expect(xEdge(1005.5, 300)).toBe(1020);
    expect(xEdge(1001, 120)).toBe(1002);
  });

  /** `n` one-second samples ending at `end`, idle but for a boot spike of 80% at `spikeAt`. */
  function history(end: number, n: number, spikeAt?: number): { t: number[]; cpu: number[] } {
    const t = Array.from({ length: n }, (_, i) => end - n + 1 + i);
    return { t, cpu: t.map((x) => (spikeAt !== undefined && Math.abs(x - spikeAt) < 3 ? 80 : 0.04)) };
  }

  it("is not drawn again while a spike in its window has not moved a step, and is when it has", () => {
    const draw = (end: number) => { const h = history(end, 300, 800); return picture(h.t, [h.cpu], 280, 70, 300, 100); };
    // 991..1005 lie in one 15 s step of a 300 s window: one picture
    const pics = new Set(Array.from({ length: 15 }, (_, i) => draw(991 + i)));
    expect(pics.size).toBe(1);
    // the next second starts a new step: the spike moves left
    expect(draw(1006)).not.toBe(draw(1005));
  });

  it("is never drawn again while its window is flat", () => {
    const draw = (end: number) => { const h = history(end, 300); return picture(h.t, [h.cpu], 280, 70, 300, 100); };
    const pics = new Set(Array.from({ length: 60 }, (_, i) => draw(2000 + i)));
    expect(pics.size).toBe(1);
  });
});
