// The weir dashboard: polls /api/state once a second and draws the plan,
// the stage table, the charts and the counters. No other origin is used.
"use strict";

const SVG = "http://www.w3.org/2000/svg";

function el(name, attrs, text) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function num(x, digits) {
  if (x === null || x === undefined || !isFinite(x)) return "–";
  return Number(x).toLocaleString("en", { maximumFractionDigits: digits || 0 });
}

// Green (idle) to red (saturated) by utilisation.
function colour(rho) {
  const r = Math.max(0, Math.min(1, rho || 0));
  return `hsl(${Math.round((1 - r) * 120)}, 70%, ${88 - Math.round(r * 18)}%)`;
}

// Columns by depth (longest path from a source), rows in plan order.
function layout(stages, edges) {
  const depth = new Map(stages.map((s) => [s.id, 0]));
  for (let pass = 0; pass < stages.length; pass++) {
    for (const e of edges) {
      const d = depth.get(e.from) + 1;
      if (d > depth.get(e.to)) depth.set(e.to, d);
    }
  }
  const rows = new Map();
  const pos = new Map();
  for (const s of stages) {
    const d = depth.get(s.id);
    const row = rows.get(d) || 0;
    rows.set(d, row + 1);
    pos.set(s.id, { x: 10 + d * 230, y: 10 + row * 100 });
  }
  return { pos, width: 10 + (Math.max(0, ...depth.values()) + 1) * 230, height: 10 + Math.max(1, ...rows.values()) * 100 };
}

function drawPlan(state) {
  const svg = document.getElementById("plan");
  svg.replaceChildren();
  const { pos, width, height } = layout(state.stages, state.edges);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.style.height = `${height}px`;
  for (const e of state.edges) {
    const a = pos.get(e.from), b = pos.get(e.to);
    if (!a || !b) continue;
    svg.appendChild(el("line", { x1: a.x + 200, y1: a.y + 40, x2: b.x, y2: b.y + 40, class: e.exchange ? "exchange" : "" }));
  }
  for (const s of state.stages) {
    const p = pos.get(s.id);
    const g = el("g", { transform: `translate(${p.x},${p.y})`, "data-stage": s.name });
    g.appendChild(el("rect", { width: 200, height: 80, fill: colour(s.utilization) }));
    const name = s.name.length > 30 ? s.name.slice(0, 29) + "…" : s.name;
    g.appendChild(el("text", { x: 8, y: 16, class: "name" }, name));
    g.appendChild(el("text", { x: 8, y: 34 }, `λ ${num(s.arrival_rate)}/s  μ ${num(s.service_rate)}/s`));
    g.appendChild(el("text", { x: 8, y: 52 }, `ρ ${num(s.utilization, 2)}  L ${num(s.backlog)}`));
    g.appendChild(el("text", { x: 8, y: 70 }, `W ${num(s.waiting_seconds * 1000, 1)} ms`));
    g.appendChild(el("title", {}, s.name));
    svg.appendChild(g);
  }
}

function drawTable(state) {
  const body = document.querySelector("#stages tbody");
  body.replaceChildren();
  for (const s of state.stages) {
    const tr = document.createElement("tr");
    for (const v of [s.name, num(s.arrival_rate), num(s.service_rate), num(s.utilization, 2),
      num(s.backlog), num(s.waiting_seconds * 1000, 1), num(s.records_in), num(s.records_out)]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
}

function drawChart(id, points) {
  const svg = document.getElementById(id);
  svg.replaceChildren();
  const w = 600, h = 160, left = 50, bottom = 20;
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  const ys = points.map((p) => p[1]).filter((y) => y !== null && isFinite(y));
  if (points.length < 2 || ys.length === 0) {
    svg.appendChild(el("text", { x: left, y: h / 2 }, "gathering…"));
    return;
  }
  const t0 = points[0][0], t1 = points[points.length - 1][0];
  const lo = Math.min(0, ...ys), hi = Math.max(...ys) || 1;
  const x = (t) => left + ((t - t0) / Math.max(1, t1 - t0)) * (w - left - 10);
  const y = (v) => h - bottom - ((v - lo) / (hi - lo || 1)) * (h - bottom - 10);
  svg.appendChild(el("line", { x1: left, y1: h - bottom, x2: w - 10, y2: h - bottom }));
  svg.appendChild(el("text", { x: 2, y: 14 }, num(hi, hi < 10 ? 2 : 0)));
  svg.appendChild(el("text", { x: 2, y: h - bottom }, num(lo)));
  svg.appendChild(el("text", { x: left, y: h - 4 }, `${Math.round((t1 - t0) / 1000)} s`));
  const line = points.filter((p) => p[1] !== null).map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`);
  svg.appendChild(el("polyline", { points: line.join(" ") }));
}

function drawCounters(state) {
  const dl = document.getElementById("counters");
  dl.replaceChildren();
  const c = state.counters;
  const rows = [
    ["records read", num(c.read)], ["records written", num(c.written)],
    ["late records", num(c.late)], ["skipped (bad records)", num(c.skipped)],
    ["dead letters", num(c.dead_letters)], ["checkpoints", num(c.checkpoints)],
    ["resident memory", `${num((state.process.resident_bytes || 0) / 1048576, 1)} MiB`],
    ["CPU time", `${num(state.process.cpu_seconds, 1)} s`],
  ];
  for (const l of state.latencies || []) {
    const where = l.process === undefined ? "" : ` (process ${l.process})`;
    rows.push([`result latency, ${l.sink}${where}`,
      l.count ? `p50 ≤ ${num(l.p50_seconds * 1000, 0)} ms, p99 ≤ ${num(l.p99_seconds * 1000, 0)} ms (${num(l.count)} results)` : "no results yet"]);
  }
  for (const p of state.processes || []) {
    if ((state.processes || []).length < 2) break;
    const age = p.age_seconds > 3 ? ` (reported ${num(p.age_seconds, 0)} s ago)` : "";
    rows.push([`process ${p.process}`,
      `${num((p.resident_bytes || 0) / 1048576, 1)} MiB, ${num(p.cpu_seconds, 1)} s CPU${age}`]);
  }
  for (const [k, v] of rows) {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = v;
    dl.append(dt, dd);
  }
  const wm = document.querySelector("#watermarks tbody");
  wm.replaceChildren();
  for (const w of state.watermarks) {
    const tr = document.createElement("tr");
    const where = w.process === undefined ? w.partition : `${w.partition} (process ${w.process})`;
    for (const v of [w.source, where, new Date(w.watermark_ms).toISOString(), num(w.lag_seconds, 1)]) {
      const td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
    }
    wm.appendChild(tr);
  }
}

async function refresh() {
  try {
    const state = await (await fetch("/api/state", { cache: "no-store" })).json();
    document.getElementById("job").textContent = state.job;
    document.getElementById("status").textContent =
      `running for ${num(state.uptime_seconds, 0)} s · ${num(state.counters.read)} records read` +
      ((state.processes || []).length > 1 ? ` · ${state.processes.length} processes` : "") +
      ` · updated ${new Date().toLocaleTimeString()}`;
    drawPlan(state);
    drawTable(state);
    drawChart("throughput", state.series.map((p) => [p.t, p.throughput]));
    drawChart("lag", state.series.map((p) => [p.t, p.lag]));
    drawCounters(state);
  } catch (e) {
    document.getElementById("status").textContent = `the job is not answering (it may have ended): ${e}`;
  }
}

refresh();
setInterval(refresh, 1000);
