// ccmon supervisor page: live alerts, queue figures and agents over the gateway's WebSocket.
// Plain DOM, no framework. Every string from the server goes through textContent or
// setAttribute, never through innerHTML, so nothing it sends can inject markup.
"use strict";

(() => {
  const TOKEN_KEY = "ccmon.token";
  const PING_MS = 20000;
  const STALE_MS = 65000; // nothing at all (not even a pong) for this long: reconnect
  const BACKOFF_FIRST_MS = 1000;
  const BACKOFF_MAX_MS = 15000;
  const ACK_WAIT_MS = 10000;
  const STATUS_MS = 6000;
  const MAX_RESOLVED = 200; // resolved rows kept as history, oldest dropped first
  const CLOSE_TOKEN_REFUSED = 4401;
  const SEVERITY_RANK = { critical: 3, warning: 2, info: 1 };

  const $ = (id) => document.getElementById(id);
  const ui = {
    form: $("sign-in-form"),
    token: $("token"),
    signIn: $("sign-in"),
    signOut: $("sign-out"),
    user: $("user"),
    connection: $("connection"),
    status: $("status"),
    dashboard: $("dashboard"),
    tiles: $("tiles"),
    noTiles: $("no-tiles"),
    kpiWindow: $("kpi-window"),
    alerts: $("alerts"),
    noAlerts: $("no-alerts"),
    alertCount: $("alert-count"),
  };

  // ---- state ---------------------------------------------------------------------------
  let ws = null;
  let backoffMs = BACKOFF_FIRST_MS;
  let reconnectTimer = null;
  let pingTimer = null;
  let staleTimer = null;
  let statusTimer = null;
  let lastMessageAt = 0;
  let who = null; // "user|queues" of the current session, to notice a change of user
  const alerts = new Map(); // id -> {data, el, parts}
  const pendingAcks = new Map(); // id -> timer
  const tiles = new Map(); // "queue\x1fchannel" -> {el, parts}
  let agentsTable = null; // agents.js, made once the helpers below exist

  // ---- small helpers -------------------------------------------------------------------
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function storedToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY);
    } catch (_) {
      return null;
    }
  }

  function storeToken(token) {
    try {
      if (token === null) sessionStorage.removeItem(TOKEN_KEY);
      else sessionStorage.setItem(TOKEN_KEY, token);
    } catch (_) {
      /* storage disabled: the session just won't survive a reload */
    }
  }

  function wsUrl() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/ws`;
  }

  function isNumber(x) {
    return typeof x === "number" && Number.isFinite(x);
  }

  function formatNumber(x) {
    if (!isNumber(x)) return "no data";
    return String(Math.round(x * 100) / 100);
  }

  function formatPercent(ratio) {
    if (!isNumber(ratio)) return "no data";
    return `${Math.round(ratio * 1000) / 10} %`;
  }

  function formatSeconds(seconds) {
    if (!isNumber(seconds)) return "no data";
    if (seconds < 60) return `${Math.round(seconds * 10) / 10} s`;
    const total = Math.round(seconds);
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = total % 60;
    if (h > 0) return `${h} h ${String(m).padStart(2, "0")} min`;
    return `${m} min ${String(s).padStart(2, "0")} s`;
  }

  function parseTime(text) {
    if (typeof text !== "string") return NaN;
    return Date.parse(text);
  }

  function relative(ms) {
    const diff = Math.round((Date.now() - ms) / 1000);
    if (diff < 10) return "just now"; // also a little ahead: the clocks may differ
    if (diff < 60) return `${diff} s ago`;
    const min = Math.floor(diff / 60);
    if (min < 60) return `${min} min ago`;
    const h = Math.floor(min / 60);
    if (h < 24) return `${h} h ${min % 60} min ago`;
    return `${Math.floor(h / 24)} d ago`;
  }

  function clockTime(ms) {
    const date = new Date(ms);
    const today = new Date();
    const sameDay = date.toDateString() === today.toDateString();
    return sameDay ? date.toLocaleTimeString() : date.toLocaleString();
  }

  // Fill a <time> element with "HH:MM:SS (3 min ago)" for an RFC 3339 string.
  function setTime(node, text) {
    const ms = parseTime(text);
    if (Number.isNaN(ms)) {
      node.removeAttribute("datetime");
      node.removeAttribute("title");
      node.dataset.ms = "";
      node.textContent = text ? String(text) : "—";
      return;
    }
    node.setAttribute("datetime", text);
    node.setAttribute("title", new Date(ms).toISOString());
    node.dataset.ms = String(ms);
    node.textContent = `${clockTime(ms)} (${relative(ms)})`;
  }

  function refreshTimes() {
    for (const node of document.querySelectorAll("time[data-ms]")) {
      const ms = Number(node.dataset.ms);
      if (node.dataset.ms && Number.isFinite(ms)) {
        node.textContent = `${clockTime(ms)} (${relative(ms)})`;
      }
    }
  }

  // ---- status area and connection indicator --------------------------------------------
  function showStatus(text, kind = "info", ms = STATUS_MS) {
    clearTimeout(statusTimer);
    ui.status.textContent = text;
    ui.status.dataset.kind = kind;
    ui.status.hidden = false;
    if (ms) statusTimer = setTimeout(clearStatus, ms);
  }

  function clearStatus() {
    clearTimeout(statusTimer);
    ui.status.hidden = true;
    ui.status.textContent = "";
  }

  function setConnection(state, text) {
    ui.connection.dataset.state = state;
    ui.connection.textContent = text;
  }

  // ---- signed in / signed out ----------------------------------------------------------
  function showSignIn() {
    ui.form.hidden = false;
    ui.dashboard.hidden = true;
    ui.user.hidden = true;
    ui.signOut.hidden = true;
    ui.signIn.disabled = false;
    ui.token.value = "";
    ui.token.focus();
  }

  function showDashboard() {
    ui.form.hidden = true;
    ui.dashboard.hidden = false;
    ui.signOut.hidden = false;
  }

  function clearData() {
    for (const timer of pendingAcks.values()) clearTimeout(timer);
    pendingAcks.clear();
    alerts.clear();
    ui.alerts.replaceChildren();
    tiles.clear();
    ui.tiles.replaceChildren(ui.noTiles);
    ui.kpiWindow.textContent = "";
    agentsTable.clear();
    who = null;
    renderAlertCount();
  }

  function signOut(message) {
    storeToken(null);
    disconnect();
    clearData();
    setConnection("offline", "signed out");
    if (message) showStatus(message, "error", 0);
    else clearStatus();
    showSignIn();
  }

  // ---- WebSocket -----------------------------------------------------------------------
  function connect() {
    const token = storedToken();
    if (!token) {
      showSignIn();
      return;
    }
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    if (ui.connection.dataset.state !== "reconnecting") setConnection("connecting", "connecting…");

    let socket;
    try {
      socket = new WebSocket(wsUrl());
    } catch (err) {
      scheduleReconnect();
      return;
    }
    ws = socket;

    socket.onopen = () => {
      if (ws !== socket) return;
      lastMessageAt = Date.now();
      socket.send(JSON.stringify({ type: "auth", token }));
      startTimers(socket);
    };
    socket.onmessage = (event) => {
      if (ws !== socket) return;
      lastMessageAt = Date.now();
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      if (msg && typeof msg === "object") handleMessage(socket, msg);
    };
    socket.onclose = (event) => {
      if (ws !== socket) return;
      onClosed(event.code);
    };
    socket.onerror = () => {
      /* a close event always follows */
    };
  }

  function startTimers(socket) {
    stopTimers();
    pingTimer = setInterval(() => send({ type: "ping" }), PING_MS);
    staleTimer = setInterval(() => {
      if (ws === socket && Date.now() - lastMessageAt > STALE_MS) {
        // A half-open connection may take long to report its close: give it up now.
        dropSocket();
        onClosed(1006);
      }
    }, 5000);
  }

  function stopTimers() {
    clearInterval(pingTimer);
    clearInterval(staleTimer);
    pingTimer = null;
    staleTimer = null;
  }

  function dropSocket() {
    const socket = ws;
    ws = null;
    stopTimers();
    if (socket) {
      socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
      try {
        socket.close(1000, "bye");
      } catch (_) {
        /* already closed */
      }
    }
  }

  function disconnect() {
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    dropSocket();
  }

  function onClosed(code) {
    ws = null;
    stopTimers();
    for (const id of [...pendingAcks.keys()]) ackSettled(id);
    if (code === CLOSE_TOKEN_REFUSED) {
      signOut("Token refused");
      return;
    }
    setConnection("reconnecting", "Disconnected, reconnecting…");
    scheduleReconnect();
  }

  function scheduleReconnect() {
    clearTimeout(reconnectTimer);
    const delay = backoffMs;
    backoffMs = Math.min(backoffMs * 2, BACKOFF_MAX_MS);
    reconnectTimer = setTimeout(connect, delay);
  }

  function send(msg) {
    if (ws === null || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(msg));
    return true;
  }

  function handleMessage(socket, msg) {
    switch (msg.type) {
      case "snapshot":
        onSnapshot(msg);
        // Subscribed once the snapshot shows the token was taken ("kpis": older gateways).
        socket.send(JSON.stringify({ type: "subscribe", kpis: true, topics: ["kpis", "agents"] }));
        break;
      case "alert":
        upsertAlert(msg);
        renderAlerts();
        break;
      case "kpis":
        onKpis(msg);
        break;
      case "agents":
        agentsTable.update(msg);
        break;
      case "error":
        onError(msg);
        break;
      case "pong":
      default:
        break;
    }
  }

  // ---- messages ------------------------------------------------------------------------
  function onSnapshot(msg) {
    backoffMs = BACKOFF_FIRST_MS;
    setConnection("live", "live");
    showDashboard();
    const queues = Array.isArray(msg.queues) ? msg.queues.map(String) : null;
    const user = typeof msg.user === "string" ? msg.user : null;
    const identity = `${user}|${queues ? queues.join(",") : ""}`;
    if (who !== null && who !== identity) clearData(); // another token: start afresh
    who = identity;
    if (user !== null || queues !== null) {
      const shown = queues ? queues.map((q) => (q === "*" ? "all queues" : q)).join(", ") : "";
      ui.user.textContent = [user, shown].filter(Boolean).join(" · ");
      ui.user.hidden = false;
    }
    if (ui.status.dataset.kind === "error" && ui.status.textContent === "Token refused") {
      clearStatus();
    }

    // The snapshot is the set of firing alerts now; resolved rows stay as history.
    const fresh = new Set();
    for (const alert of Array.isArray(msg.alerts) ? msg.alerts : []) {
      if (alert && typeof alert.id === "string") {
        fresh.add(alert.id);
        upsertAlert(alert);
      }
    }
    for (const [id, entry] of [...alerts]) {
      if (entry.data.status !== "resolved" && !fresh.has(id)) removeAlert(id);
    }
    renderAlerts();
  }

  function onError(msg) {
    const text = typeof msg.error === "string" && msg.error ? msg.error : "error";
    if (typeof msg.id === "string" && pendingAcks.has(msg.id)) {
      ackSettled(msg.id);
      showStatus(`Acknowledge refused: ${text}`, "error");
    } else {
      showStatus(`Server: ${text}`, "error");
    }
  }

  // ---- alerts --------------------------------------------------------------------------
  function buildAlert(id) {
    const li = el("li", "alert");
    li.id = `alert-${id}`;
    const head = el("div", "alert-head");
    const parts = {
      severity: el("span", "severity"),
      rule: el("span", "rule"),
      state: el("span", "state"),
      summary: el("p", "summary"),
      labels: el("ul", "labels"),
      value: el("dd", "value"),
      since: el("time", "since"),
      ended: el("time", "ended"),
      endedRow: el("div", "fact fact-ended"),
      ack: el("div", "ack-area"),
    };
    head.append(parts.severity, parts.rule, parts.state);
    parts.labels.setAttribute("aria-label", "labels");

    const facts = el("dl", "facts");
    const valueRow = el("div", "fact");
    valueRow.append(el("dt", null, "Value"), parts.value);
    const sinceRow = el("div", "fact");
    const sinceDd = el("dd");
    sinceDd.append(parts.since);
    sinceRow.append(el("dt", null, "Since"), sinceDd);
    const endedDd = el("dd");
    endedDd.append(parts.ended);
    parts.endedRow.append(el("dt", null, "Ended"), endedDd);
    facts.append(valueRow, sinceRow, parts.endedRow);

    li.append(head, parts.summary, parts.labels, facts, parts.ack);
    return { el: li, parts };
  }

  function upsertAlert(data) {
    if (typeof data.id !== "string" || data.id === "") return;
    let entry = alerts.get(data.id);
    if (!entry) {
      entry = buildAlert(data.id);
      alerts.set(data.id, entry);
    }
    entry.data = data;
    if (data.acked_by) ackSettled(data.id);
    fillAlert(entry);
  }

  function removeAlert(id) {
    const entry = alerts.get(id);
    if (!entry) return;
    if (pendingAcks.has(id)) ackSettled(id);
    entry.el.remove();
    alerts.delete(id);
  }

  function fillAlert(entry) {
    const { data, el: li, parts } = entry;
    const status = data.status === "resolved" ? "resolved" : "firing";
    const severity = typeof data.severity === "string" ? data.severity : "warning";
    li.dataset.status = status;
    li.dataset.severity = severity;

    parts.severity.textContent = severity.toUpperCase();
    parts.rule.textContent = data.rule ? String(data.rule) : "(unnamed rule)";
    parts.state.textContent = status;
    parts.summary.textContent = data.summary ? String(data.summary) : "";
    parts.summary.hidden = !data.summary;

    const labelItems = [];
    const labels = data.labels && typeof data.labels === "object" ? data.labels : {};
    for (const [key, value] of Object.entries(labels)) {
      const item = el("li", "label");
      item.append(el("span", "label-key", key), "=", el("span", "label-value", value));
      labelItems.push(item);
    }
    parts.labels.replaceChildren(...labelItems);

    parts.value.textContent = `${formatNumber(data.value)} (threshold ${formatNumber(
      data.threshold,
    )})`;
    setTime(parts.since, data.starts_at);
    parts.endedRow.hidden = !data.ends_at;
    if (data.ends_at) setTime(parts.ended, data.ends_at);

    fillAck(entry);
  }

  function fillAck(entry) {
    const { data, parts } = entry;
    if (data.acked_by) {
      const existing = parts.ack.querySelector(".acked");
      const text = `Acknowledged by ${data.acked_by}`;
      if (existing) existing.textContent = text;
      else parts.ack.replaceChildren(el("span", "acked", text));
      return;
    }
    let button = parts.ack.querySelector("button.ack");
    if (!button) {
      button = el("button", "ack", "Acknowledge");
      button.type = "button";
      button.addEventListener("click", () => acknowledge(data.id));
      parts.ack.replaceChildren(button);
    }
    const waiting = pendingAcks.has(data.id);
    button.disabled = waiting;
    button.textContent = waiting ? "Acknowledging…" : "Acknowledge";
    button.setAttribute("aria-label", `Acknowledge ${data.rule || "alert"}`);
  }

  function acknowledge(id) {
    const entry = alerts.get(id);
    if (!entry || entry.data.acked_by || pendingAcks.has(id)) return;
    if (!send({ type: "ack", id })) {
      showStatus("Not connected: the acknowledgement was not sent", "error");
      return;
    }
    pendingAcks.set(
      id,
      setTimeout(() => {
        ackSettled(id);
        showStatus("No answer to the acknowledgement; try again", "error");
      }, ACK_WAIT_MS),
    );
    fillAck(entry);
  }

  function ackSettled(id) {
    clearTimeout(pendingAcks.get(id));
    if (!pendingAcks.delete(id)) return;
    const entry = alerts.get(id);
    if (entry && entry.data) fillAck(entry);
  }

  function sortKey(entry) {
    const { data } = entry;
    const resolved = data.status === "resolved";
    const starts = parseTime(data.starts_at);
    const ends = parseTime(data.ends_at);
    const when = resolved && !Number.isNaN(ends) ? ends : starts;
    return { resolved, when: Number.isNaN(when) ? 0 : when };
  }

  function renderAlerts() {
    const entries = [...alerts.values()];
    entries.sort((a, b) => {
      const ka = sortKey(a);
      const kb = sortKey(b);
      if (ka.resolved !== kb.resolved) return ka.resolved ? 1 : -1; // firing first
      if (ka.when !== kb.when) return kb.when - ka.when; // newest first
      return a.data.id < b.data.id ? -1 : 1;
    });

    // Keep a bounded history of resolved rows.
    let resolvedSeen = 0;
    for (const entry of entries) {
      if (entry.data.status === "resolved" && ++resolvedSeen > MAX_RESOLVED) {
        removeAlert(entry.data.id);
      }
    }
    const kept = entries.filter((entry) => alerts.has(entry.data.id));

    // Move only the rows that are out of place, so focus and screen readers are not upset.
    kept.forEach((entry, index) => {
      const at = ui.alerts.children[index];
      if (at !== entry.el) ui.alerts.insertBefore(entry.el, at || null);
    });
    renderAlertCount();
    markTiles();
  }

  function renderAlertCount() {
    let firing = 0;
    for (const entry of alerts.values()) if (entry.data.status !== "resolved") firing += 1;
    ui.alertCount.textContent = alerts.size ? `(${firing} firing)` : "";
    ui.noAlerts.hidden = alerts.size > 0;
    document.title = firing ? `(${firing}) ccmon — supervisor` : "ccmon — supervisor";
  }

  // ---- KPI tiles -----------------------------------------------------------------------
  const METRICS = [
    ["waiting", "Waiting", formatNumber],
    ["oldest_wait_seconds", "Oldest wait", formatSeconds],
    ["in_conversation", "In conversation", formatNumber],
    ["on_hold", "On hold", formatNumber],
    ["service_level_ratio", "Service level", formatPercent],
    ["abandon_ratio", "Abandoned", formatPercent],
    ["answer_wait_seconds_avg", "Avg answer wait", formatSeconds],
  ];

  function buildTile(queue, channel) {
    const article = el("article", "tile");
    article.dataset.queue = queue;
    article.dataset.channel = channel;
    const title = el("h3", "tile-title");
    title.append(el("span", "tile-queue", queue), el("span", "tile-channel", channel));
    article.setAttribute("aria-label", `${queue} ${channel}`);
    const dl = el("dl", "tile-metrics");
    const parts = {};
    for (const [key, label] of METRICS) {
      const row = el("div", "metric");
      row.dataset.metric = key;
      const dd = el("dd", "metric-value");
      row.append(el("dt", "metric-label", label), dd);
      dl.append(row);
      parts[key] = { row, dd };
    }
    article.append(title, dl);
    return { el: article, parts };
  }

  function onKpis(msg) {
    const list = Array.isArray(msg.tiles) ? msg.tiles : [];
    ui.kpiWindow.textContent = msg.window ? `(ratios over ${msg.window})` : "";
    const seen = new Set();
    const order = [];
    for (const data of list) {
      if (!data || typeof data !== "object") continue;
      const queue = String(data.queue ?? "");
      const channel = String(data.channel ?? "");
      const key = `${queue}\u001f${channel}`;
      if (seen.has(key)) continue;
      seen.add(key);
      let tile = tiles.get(key);
      if (!tile) {
        tile = buildTile(queue, channel);
        tiles.set(key, tile);
      }
      for (const [name, , format] of METRICS) {
        const value = data[name];
        const { row, dd } = tile.parts[name];
        dd.textContent = format(value);
        row.dataset.nodata = String(!isNumber(value));
      }
      tile.el.dataset.waiting = String(isNumber(data.waiting) && data.waiting > 0);
      order.push([queue, channel, tile]);
    }
    for (const [key, tile] of [...tiles]) {
      if (!seen.has(key)) {
        tile.el.remove();
        tiles.delete(key);
      }
    }
    order.sort((a, b) => a[0].localeCompare(b[0]) || a[1].localeCompare(b[1]));
    if (order.length) ui.noTiles.remove();
    else if (!ui.noTiles.isConnected) ui.tiles.append(ui.noTiles);
    order.forEach(([, , tile], index) => {
      const at = ui.tiles.children[index];
      if (at !== tile.el) ui.tiles.insertBefore(tile.el, at || null);
    });
    markTiles();
  }

  // A tile shows the worst severity of the firing alerts on its queue (and channel, if any).
  function markTiles() {
    for (const tile of tiles.values()) {
      let worst = 0;
      let name = "";
      for (const { data } of alerts.values()) {
        if (data.status === "resolved" || !data.labels) continue;
        if (data.labels.queue !== tile.el.dataset.queue) continue;
        if (data.labels.channel !== undefined && data.labels.channel !== tile.el.dataset.channel) {
          continue;
        }
        const rank = SEVERITY_RANK[data.severity] || 0;
        if (rank > worst) {
          worst = rank;
          name = data.severity;
        }
      }
      if (name) tile.el.dataset.alert = name;
      else delete tile.el.dataset.alert;
    }
  }

  // ---- wiring --------------------------------------------------------------------------
  agentsTable = window.ccmonAgentsTable({
    el,
    isNumber,
    formatNumber,
    formatSeconds,
    formatPercent,
  });

  ui.form.addEventListener("submit", (event) => {
    event.preventDefault();
    const token = ui.token.value.trim();
    if (!token) {
      showStatus("Enter your access token", "error");
      ui.token.focus();
      return;
    }
    clearStatus();
    ui.token.value = "";
    storeToken(token);
    disconnect();
    backoffMs = BACKOFF_FIRST_MS;
    connect();
  });

  ui.signOut.addEventListener("click", () => signOut(null));

  setInterval(refreshTimes, 15000);

  // A token kept from earlier in this tab (a reload): straight to the dashboard. A new
  // sign-in keeps the form up until the server's snapshot shows the token was taken.
  if (storedToken()) {
    showDashboard();
    connect();
  } else {
    showSignIn();
  }
})();
