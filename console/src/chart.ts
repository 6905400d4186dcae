/**
 * A step chart in plain SVG (no chart library): one line per series, each a limit that holds until
 * the next decision changes it. Axis labels in the page's font; colours from CSS variables.
 */
import type { Series } from "./model";

const NS = "http://www.w3.org/2000/svg";

function el<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

export function stepChart(options: {
  title: string;
  unit: string;
  series: Series[];
  /** Right end of the time axis (ms), e.g. now. */
  until: number;
}): SVGSVGElement {
  const W = 640;
  const H = 240;
  // The legend takes one line per series under the title, above the plot.
  const pad = { l: 56, r: 12, t: 30 + 14 * options.series.length, b: 32 };
  const all = options.series.flatMap((s) => s.points);
  const t0 = Math.min(...all.map((p) => p[0]));
  const t1 = Math.max(options.until, ...all.map((p) => p[0]), t0 + 1000);
  const vMax = Math.max(1, ...all.map((p) => p[1])) * 1.1;
  const x = (t: number) => pad.l + ((t - t0) / (t1 - t0)) * (W - pad.l - pad.r);
  const y = (v: number) => H - pad.b - (v / vMax) * (H - pad.t - pad.b);

  const svg = el("svg", {
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    "aria-label": `${options.title}: ${options.series.length} series`,
    class: "chart",
  });
  const title = el("title", {});
  title.textContent = options.title;
  svg.append(title);
  const text = (s: string, attrs: Record<string, string | number>) => {
    const t = el("text", attrs);
    t.textContent = s;
    svg.append(t);
  };
  text(options.title, { x: pad.l, y: 14, class: "chart-title" });
  for (let i = 0; i <= 4; i++) {
    const v = (vMax / 1.1) * (i / 4);
    svg.append(el("line", { x1: pad.l, x2: W - pad.r, y1: y(v), y2: y(v), class: "grid" }));
    text(`${Math.round(v)}${options.unit}`, { x: pad.l - 6, y: y(v) + 4, "text-anchor": "end" });
  }
  for (const t of [t0, (t0 + t1) / 2, t1])
    text(new Date(t).toISOString().slice(11, 19), {
      x: x(t),
      y: H - 10,
      "text-anchor": t === t0 ? "start" : t === t1 ? "end" : "middle",
    });
  options.series.forEach((s, i) => {
    let d = "";
    s.points.forEach(([t, v], j) => {
      d += j === 0 ? `M${x(t)},${y(v)}` : `H${x(t)}V${y(v)}`;
    });
    const last = s.points.at(-1);
    if (last) d += `H${x(t1)}`;
    svg.append(el("path", { d, class: `series s${i % 6}` }));
    text(`— ${s.name}`, {
      x: W - pad.r,
      y: 14 + 14 * (i + 1),
      "text-anchor": "end",
      class: `legend s${i % 6}`,
    });
  });
  return svg;
}
