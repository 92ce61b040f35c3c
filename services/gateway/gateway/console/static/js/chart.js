// The throughput chart: one bar per minute, completed stacked on failed, drawn as SVG.

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 600;
const HEIGHT = 120;
const GAP = 1;

function svg(tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  return node;
}

/**
 * A chart of `minutes` ({minute_ms, completed, failed}, oldest first). It is an image to
 * assistive technology, named by a summary of the numbers; each bar has a tooltip.
 */
export function throughputChart(minutes, label) {
  const completed = minutes.reduce((total, minute) => total + minute.completed, 0);
  const failed = minutes.reduce((total, minute) => total + minute.failed, 0);
  const busiest = Math.max(0, ...minutes.map((minute) => minute.completed + minute.failed));
  const peak = Math.max(1, busiest);
  const chart = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    class: "chart",
    role: "img",
    "aria-label": `${label}: ${completed} completed and ${failed} failed in the last ${minutes.length} minutes; at most ${busiest} in one minute`,
    preserveAspectRatio: "none",
  });
  const barWidth = WIDTH / Math.max(1, minutes.length);
  minutes.forEach((minute, index) => {
    const x = index * barWidth;
    const failedHeight = (minute.failed / peak) * HEIGHT;
    const completedHeight = (minute.completed / peak) * HEIGHT;
    const bar = svg("g", {});
    const title = svg("title", {});
    title.textContent = `${new Date(minute.minute_ms).toLocaleTimeString()}: ${minute.completed} completed, ${minute.failed} failed`;
    bar.append(
      title,
      svg("rect", { x, y: HEIGHT - completedHeight, width: Math.max(0, barWidth - GAP), height: completedHeight, class: "completed" }),
      svg("rect", { x, y: HEIGHT - completedHeight - failedHeight, width: Math.max(0, barWidth - GAP), height: failedHeight, class: "failed" }),
    );
    chart.append(bar);
  });
  chart.append(svg("line", { x1: 0, y1: HEIGHT - 0.5, x2: WIDTH, y2: HEIGHT - 0.5, class: "axis" }));
  return chart;
}
