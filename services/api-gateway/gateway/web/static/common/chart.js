// Bar charts as SVG, drawn here: no library, readable on a phone, described for screen readers.
const SVG = "http://www.w3.org/2000/svg";

function node(tag, attrs = {}, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) element.setAttribute(key, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

// A number for an axis or a tooltip: at most two decimals, no trailing zeros.
export function shortNumber(value) {
  return Number(value).toLocaleString(undefined, { maximumFractionDigits: 2 });
}

// A round step for four grid lines: 1, 2, 2.5 or 5 times a power of ten, covering `value`.
export function niceStep(value) {
  if (!(value > 0)) return 0.25;
  const raw = value / 4;
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= raw) return step * power;
  return 10 * power;
}

/**
 * Draw bars for `points` ([{label, value}]) and answer the <svg>.
 * `format` turns a value into the words of an axis tick and a bar's tooltip.
 */
export function barChart(points, { title, format = String, empty = "—", width = 640, height = 240, color = "#1565c0" } = {}) {
  const margin = { top: 12, right: 8, bottom: 34, left: 56 };
  const plotWidth = width - margin.left - margin.right;
  const plotHeight = height - margin.top - margin.bottom;
  const step = niceStep(Math.max(0, ...points.map((p) => p.value)));
  const top = step * 4;
  const svg = node("svg", {
    viewBox: `0 0 ${width} ${height}`,
    class: "chart",
    role: "img",
    "aria-label": `${title}: ${points.map((p) => `${p.label} ${format(p.value)}`).join(", ")}`,
    preserveAspectRatio: "xMidYMid meet",
  });
  svg.append(node("title", {}, title));
  if (!points.length) {
    svg.setAttribute("viewBox", `0 0 ${width} 60`);
    svg.setAttribute("aria-label", `${title}: ${empty}`);
    svg.append(node("text", { x: width / 2, y: 34, "text-anchor": "middle", class: "tick empty-chart" }, empty));
    return svg;
  }
  for (let i = 0; i <= 4; i++) {
    const y = margin.top + plotHeight - (plotHeight * i) / 4;
    svg.append(node("line", { x1: margin.left, x2: width - margin.right, y1: y, y2: y, class: "grid" }));
    svg.append(node("text", { x: margin.left - 6, y: y + 4, "text-anchor": "end", class: "tick" }, format(step * i)));
  }
  const slot = plotWidth / Math.max(points.length, 1);
  const barWidth = Math.max(2, Math.min(36, slot * 0.7));
  const every = Math.ceil(points.length / Math.max(1, Math.floor(plotWidth / 44)));
  points.forEach((point, index) => {
    const barHeight = top ? (plotHeight * Math.max(0, point.value)) / top : 0;
    const x = margin.left + slot * index + (slot - barWidth) / 2;
    const bar = node("rect", {
      x,
      y: margin.top + plotHeight - barHeight,
      width: barWidth,
      height: Math.max(barHeight, point.value > 0 ? 1 : 0),
      rx: 2,
      fill: color,
      class: "bar",
    });
    bar.append(node("title", {}, `${point.label}: ${format(point.value)}`));
    svg.append(bar);
    if ((points.length - 1 - index) % every === 0) { // counted from the newest, which is always labelled
      svg.append(
        node("text", { x: x + barWidth / 2, y: height - margin.bottom + 16, "text-anchor": "middle", class: "tick" }, point.label),
      );
    }
  });
  return svg;
}
