// ccmon supervisor page: the agents table (alerts.md 1.1, "Agents for supervisors").
// Rows are updated in place from each {"type":"agents"} message; a click on a column header
// sorts by it (again: the other way); time in state ticks every second. As in app.js, every
// string from the server goes through textContent, never innerHTML.
"use strict";

// Made by app.js with its own formatting helpers: one way to show a number on the page.
window.ccmonAgentsTable = ({ el, isNumber, formatNumber, formatSeconds, formatPercent }) => {
  const table = document.getElementById("agents");
  const body = document.getElementById("agents-body");
  const empty = document.getElementById("no-agents");
  const windowLabel = document.getElementById("agents-window");
  const NONE = "—"; // an average or ratio with no samples (null): no data, never 0

  const sinceMs = (agent) => Date.parse(agent.since);
  const orNone = (format) => (value) => (isNumber(value) ? format(value) : NONE);
  // [key, text of a cell, value it sorts by (null: always last)]
  const COLUMNS = [
    ["agent_id", (a) => a.agent_id, (a) => a.agent_id],
    ["state", (a) => a.state, (a) => a.state],
    ["since", (a) => inState(a), (a) => -sinceMs(a)], // by time in state: later since, shorter
    ["queues", (a) => a.queues.join(", "), (a) => a.queues.join(", ")],
    ["handled", (a) => formatNumber(a.handled), (a) => a.handled],
    ["handle_seconds_avg", (a) => orNone(formatSeconds)(a.handle_seconds_avg),
      (a) => a.handle_seconds_avg],
    ["hold_seconds_avg", (a) => orNone(formatSeconds)(a.hold_seconds_avg),
      (a) => a.hold_seconds_avg],
    ["transferred", (a) => formatNumber(a.transferred), (a) => a.transferred],
    ["csat_ratio", (a) => orNone(formatPercent)(a.csat_ratio), (a) => a.csat_ratio],
  ];

  const rows = new Map(); // agent id -> {tr, cells, data}
  let sortKey = "agent_id";
  let ascending = true;

  function inState(agent) {
    const ms = sinceMs(agent);
    if (Number.isNaN(ms)) return NONE;
    return formatSeconds(Math.max(0, Math.floor((Date.now() - ms) / 1000))); // clocks differ
  }

  function valid(agent) {
    return agent && typeof agent === "object" && typeof agent.agent_id === "string" &&
      typeof agent.state === "string" && Array.isArray(agent.queues);
  }

  function buildRow(id) {
    const tr = el("tr");
    tr.dataset.agent = id;
    const cells = {};
    for (const [key] of COLUMNS) {
      const td = el(key === "agent_id" ? "th" : "td");
      if (key === "agent_id") td.scope = "row";
      td.dataset.key = key;
      cells[key] = td;
      tr.append(td);
    }
    return { tr, cells, data: null };
  }

  function fill(row) {
    for (const [key, text] of COLUMNS) row.cells[key].textContent = text(row.data);
    row.tr.dataset.state = row.data.state;
    row.cells.since.title = `since ${new Date(sinceMs(row.data)).toLocaleString()}`;
  }

  function compare(a, b) {
    const value = COLUMNS.find(([key]) => key === sortKey)[2];
    const x = value(a.data);
    const y = value(b.data);
    const missing = (v) => v === null || v === undefined || Number.isNaN(v);
    if (missing(x) !== missing(y)) return missing(x) ? 1 : -1; // no data last, either way
    let order = 0;
    if (!missing(x) && x !== y) order = typeof x === "string" ? x.localeCompare(y) : x - y;
    if (!ascending) order = -order;
    return order || a.data.agent_id.localeCompare(b.data.agent_id);
  }

  function render() {
    const sorted = [...rows.values()].sort(compare);
    sorted.forEach((row, index) => {
      const at = body.children[index];
      if (at !== row.tr) body.insertBefore(row.tr, at || null);
    });
    for (const th of table.querySelectorAll("thead th")) {
      const sorting = th.dataset.key === sortKey;
      th.setAttribute("aria-sort", sorting ? (ascending ? "ascending" : "descending") : "none");
    }
    table.hidden = rows.size === 0;
    empty.hidden = rows.size > 0;
  }

  function update(msg) {
    windowLabel.textContent = typeof msg.window === "string" ? `(over ${msg.window})` : "";
    const seen = new Set();
    for (const data of Array.isArray(msg.agents) ? msg.agents : []) {
      if (!valid(data) || seen.has(data.agent_id)) continue;
      seen.add(data.agent_id);
      let row = rows.get(data.agent_id);
      if (!row) {
        row = buildRow(data.agent_id);
        rows.set(data.agent_id, row);
      }
      row.data = data;
      fill(row);
    }
    for (const [id, row] of [...rows]) {
      if (!seen.has(id)) {
        row.tr.remove();
        rows.delete(id);
      }
    }
    empty.textContent = "No agents in your queues.";
    render();
  }

  function clear() {
    rows.clear();
    body.replaceChildren();
    windowLabel.textContent = "";
    empty.textContent = "Waiting for agents…";
    render();
  }

  function tick() {
    for (const row of rows.values()) row.cells.since.textContent = inState(row.data);
  }

  for (const th of table.querySelectorAll("thead th")) {
    th.querySelector("button").addEventListener("click", () => {
      ascending = th.dataset.key === sortKey ? !ascending : true;
      sortKey = th.dataset.key;
      render();
    });
  }
  setInterval(tick, 1000);
  render();
  return { update, clear };
};
