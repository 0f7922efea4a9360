// The saga monitor. Everything it shows comes from the front door's own API: the live steps
// from /monitor/events (server-sent events), counters from /summary, orders from /orders.
// It keeps a bounded window of steps (MAX_STEPS, WINDOW_MS) and redraws a canvas a few times a
// second, so a bench run at hundreds of steps a second never grows the page.
"use strict";

const SERVICES = document.body.dataset.services.split(" ");
const COLORS = { forward: "#2e8b57", failure: "#c93c3c", compensation: "#d98b1c" };
const WINDOW_MS = 30_000;
const MAX_STEPS = 4_000;
const PATHS_DRAWN = 12;
const REFRESH_MS = 2_000;
const PLAYERS_KEY = "sagashop.players";

const $ = (id) => document.getElementById(id);
const state = {
  steps: [], seen: 0, missed: 0, filter: "", selected: null, clockSkew: 0,
  stream: { flag: "connecting", text: "connecting…" },
};

// ---- the live feed ---------------------------------------------------------------------------

const TOKEN_KEY = "sagashop.token";
const RETRY_MS = 2_000;

// The stream is read with fetch rather than EventSource, so that it can carry the token in an
// Authorization header (EventSource cannot send one) when the server checks tokens.
async function listen() {
  for (;;) {
    try {
      setConnection("connecting", "connecting…");
      const response = await fetch("/monitor/events", { headers: authorized({}) });
      if (response.status === 401 || response.status === 403) {
        askForToken(response.status);
        return;
      }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      setConnection("live", "live");
      await readEvents(response.body.getReader());
    } catch {
      // the stream broke: try again below
    }
    setConnection("lost", "reconnecting…");
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
  }
}

async function readEvents(reader) {
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      onMessage(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
    }
  }
}

function onMessage(block) {
  let name = "message";
  let data = "";
  for (const line of block.split("\n")) {
    if (line.startsWith("event: ")) name = line.slice(7);
    else if (line.startsWith("data: ")) data += line.slice(6);
  }
  if (name !== "steps") return;
  let batch;
  try {
    batch = JSON.parse(data);
  } catch {
    return;
  }
  receive(Array.isArray(batch.steps) ? batch.steps : [], Number(batch.missed) || 0);
}

function authorized(headers) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { ...headers, Authorization: `Bearer ${token}` } : headers;
}

function askForToken(status) {
  const why = status === 401 ? "this server checks tokens" : "this token is not an operator's";
  setConnection("lost", `${why}: paste an operator token`);
  $("token-form").hidden = false;
}

$("token-form").addEventListener("submit", (submit) => {
  submit.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
  location.reload();
});

function setConnection(flag, text) {
  if (!text.startsWith("error")) {
    state.stream = { flag, text };
    if (failing.size) return; // the error stays shown until what failed succeeds
  }
  const shown = $("connection");
  shown.dataset.state = flag;
  shown.textContent = text;
}

function receive(steps, missed) {
  const now = Date.now();
  for (const step of steps) {
    const at = Date.parse(step.at);
    if (Number.isNaN(at) || !SERVICES.includes(step.service)) continue;
    state.clockSkew = now - at; // the latest step is about now: draw server time on our clock
    state.steps.push({
      at, lane: SERVICES.indexOf(step.service), kind: COLORS[step.kind] ? step.kind : "forward",
      orderId: String(step.orderId), label: `${step.service}.${step.step}`,
    });
  }
  if (state.steps.length > MAX_STEPS) state.steps.splice(0, state.steps.length - MAX_STEPS);
  state.seen += steps.length;
  state.missed += missed;
  if (state.selected && steps.some((step) => step.orderId === state.selected)) {
    showTimeline(state.selected);
  }
}

// ---- the swimlanes ---------------------------------------------------------------------------

const canvas = $("lanes");
const LABEL_WIDTH = 110;

function laneY(lane) {
  const height = canvas.height / SERVICES.length;
  return lane * height + height / 2;
}

function timeX(at, now) {
  const width = canvas.width - LABEL_WIDTH - 10;
  return LABEL_WIDTH + width * (1 - (now - at) / WINDOW_MS);
}

function draw() {
  const now = Date.now() - state.clockSkew;
  const oldest = now - WINDOW_MS;
  while (state.steps.length && state.steps[0].at < oldest) state.steps.shift();
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  drawLanes(context);
  drawPaths(context, now);
  for (const step of state.steps) drawMark(context, step, timeX(step.at, now), laneY(step.lane));
}

function drawLanes(context) {
  context.font = "13px system-ui, sans-serif";
  context.textBaseline = "middle";
  SERVICES.forEach((service, lane) => {
    context.fillStyle = lane % 2 ? "#ffffff" : "#f7f8fb";
    const height = canvas.height / SERVICES.length;
    context.fillRect(0, lane * height, canvas.width, height);
    context.fillStyle = "#1d2330";
    context.fillText(service, 10, laneY(lane));
  });
}

function drawPaths(context, now) {
  const latest = [];
  for (let i = state.steps.length - 1; i >= 0 && latest.length < PATHS_DRAWN; i--) {
    const id = state.steps[i].orderId;
    if (!latest.includes(id)) latest.push(id);
  }
  if (state.selected && !latest.includes(state.selected)) latest.push(state.selected);
  for (const id of latest) {
    const path = state.steps.filter((step) => step.orderId === id);
    context.strokeStyle = id === state.selected ? "#1d2330" : "rgba(29, 35, 48, 0.18)";
    context.lineWidth = id === state.selected ? 2 : 1;
    context.beginPath();
    path.forEach((step, i) => {
      const [x, y] = [timeX(step.at, now), laneY(step.lane)];
      if (i === 0) context.moveTo(x, y);
      else context.lineTo(x, y);
    });
    context.stroke();
  }
}

function drawMark(context, step, x, y) {
  context.fillStyle = COLORS[step.kind];
  context.beginPath();
  if (step.kind === "compensation") {
    context.moveTo(x, y - 6); context.lineTo(x + 6, y); context.lineTo(x, y + 6); context.lineTo(x - 6, y);
  } else if (step.kind === "failure") {
    context.rect(x - 5, y - 5, 10, 10);
  } else {
    context.arc(x, y, 4, 0, 2 * Math.PI);
  }
  context.fill();
}

canvas.addEventListener("click", (click) => {
  const box = canvas.getBoundingClientRect();
  const x = (click.clientX - box.left) * (canvas.width / box.width);
  const y = (click.clientY - box.top) * (canvas.height / box.height);
  const now = Date.now() - state.clockSkew;
  let nearest = null;
  let best = 12 * 12;
  for (const step of state.steps) {
    const distance = (timeX(step.at, now) - x) ** 2 + (laneY(step.lane) - y) ** 2;
    if (distance < best) [nearest, best] = [step, distance];
  }
  if (nearest) select(nearest.orderId);
});

// ---- counters --------------------------------------------------------------------------------

let seenBefore = 0;

async function refreshCounters() {
  const summary = await getJson("/summary");
  $("count-completed").textContent = summary.orders.COMPLETED;
  $("count-cancelled").textContent = summary.orders.CANCELLED;
  $("count-in-flight").textContent = summary.inFlight;
  $("count-dead").textContent = summary.deadLetters;
  const by = Object.entries(summary.cancelledBy).sort((a, b) => b[1] - a[1]);
  $("cancelled-by").textContent = by.map(([service, n]) => `${service} ${n}`).join(" · ");
  $("step-rate").textContent = Math.round(((state.seen - seenBefore) * 1000) / REFRESH_MS);
  seenBefore = state.seen;
  $("missed").textContent = state.missed ? `${state.missed} not drawn (sampled)` : "";
}

// ---- recent orders ---------------------------------------------------------------------------

async function refreshOrders() {
  const query = state.filter ? `?limit=25&status=${state.filter}` : "?limit=25";
  const { orders } = await getJson(`/orders${query}`);
  const rows = orders.map((order) => {
    const row = document.createElement("tr");
    row.dataset.orderId = order.id;
    row.setAttribute("aria-selected", String(order.id === state.selected));
    row.append(
      cell(order.id.slice(0, 8), "code"),
      cell(order.status, "span", `status-${order.status}`),
      cell(String(order.totalAmount)),
      cell(order.failureReason || ""),
    );
    row.addEventListener("click", () => select(order.id));
    return row;
  });
  $("order-rows").replaceChildren(...rows);
}

function cell(text, tag = null, className = "") {
  const td = document.createElement("td");
  const inner = tag ? document.createElement(tag) : td;
  inner.textContent = text;
  if (className) inner.className = className;
  if (tag) td.append(inner);
  return td;
}

for (const button of document.querySelectorAll("#filters button")) {
  button.addEventListener("click", () => {
    state.filter = button.dataset.status;
    for (const other of document.querySelectorAll("#filters button")) {
      other.setAttribute("aria-pressed", String(other === button));
    }
    refreshOrders().catch(report);
  });
}

// ---- one order's timeline --------------------------------------------------------------------

function select(orderId) {
  state.selected = orderId;
  for (const row of document.querySelectorAll("#order-rows tr")) {
    row.setAttribute("aria-selected", String(row.dataset.orderId === orderId));
  }
  showTimeline(orderId).catch(report);
}

async function showTimeline(orderId) {
  const order = await getJson(`/orders/${orderId}/timeline`);
  if (orderId !== state.selected) return;
  $("timeline-title").textContent = `order ${order.id}`;
  const why = order.failureReason ? `: ${order.failureReason}` : "";
  $("timeline-status").textContent = `${order.status}${why}`;
  $("timeline-status").className = `status-${order.status}`;
  const start = order.steps.length ? Date.parse(order.steps[0].at) : 0;
  $("timeline-steps").replaceChildren(...order.steps.map((step) => timelineStep(step, start)));
  if (order.status === "PENDING") awaitOutcome(orderId).catch(report);
}

const awaited = new Set();

async function awaitOutcome(orderId) {
  // The live feed redraws the timeline step by step; this waiting read (no polling) makes sure
  // the outcome shows even if the feed missed it, and a second later the steps that settle it.
  if (awaited.has(orderId)) return;
  awaited.add(orderId);
  try {
    await getJson(`/orders/${orderId}/status?wait=30`);
  } finally {
    awaited.delete(orderId);
  }
  if (state.selected !== orderId) return;
  await showTimeline(orderId);
  setTimeout(() => { if (state.selected === orderId) showTimeline(orderId).catch(report); }, 1000);
}

function timelineStep(step, start) {
  // One row per step, in its service's lane: the saga reads top to bottom, left to right.
  const row = document.createElement("li");
  const at = document.createElement("span");
  at.className = "at";
  at.textContent = `+${Date.parse(step.at) - start} ms`;
  const chip = document.createElement("span");
  chip.className = `chip ${step.kind}`;
  chip.style.gridColumn = String(SERVICES.indexOf(step.service) + 2);
  chip.textContent = step.event ? `${step.step} → ${step.event}` : step.step;
  chip.dataset.service = step.service;
  chip.title = `${step.service}.${step.step} on ${step.handled}`;
  row.append(at, chip);
  if (step.kind === "failure" && step.reason) {
    const reason = document.createElement("span");
    reason.className = "reason";
    reason.textContent = step.reason;
    row.append(reason);
  }
  return row;
}

// ---- starting purchases and provoking failures -----------------------------------------------

function players() {
  try {
    return JSON.parse(localStorage.getItem(PLAYERS_KEY) || "[]");
  } catch {
    return [];
  }
}

function showPlayers(chosen) {
  const options = players().map((player) => new Option(player.username, player.id));
  $("player").replaceChildren(...options);
  if (chosen) $("player").value = chosen;
}

async function newPlayer() {
  const { data } = await sendJson("POST", "/setup-test-data");
  const player = { id: data.user.id, username: `${data.user.username} (${data.user.balance})` };
  localStorage.setItem(PLAYERS_KEY, JSON.stringify([player, ...players()].slice(0, 20)));
  showPlayers(player.id);
  await refreshItems();
  return player;
}

async function refreshItems() {
  const { items } = await getJson("/items");
  const chosen = $("item").value;
  const options = items.map((item) => new Option(`${item.name} · ${item.price} · ${item.stock} left`, item.id));
  $("item").replaceChildren(...options);
  if (chosen) $("item").value = chosen;
}

$("new-player").addEventListener("click", () => newPlayer().catch(report));

$("buy").addEventListener("submit", async (submit) => {
  submit.preventDefault();
  try {
    if (!$("player").value) await newPlayer();
    const body = {
      userId: $("player").value, itemId: $("item").value, quantity: Number($("quantity").value),
    };
    const order = await sendJson("POST", "/orders", body);
    $("buy-result").textContent = `order ${order.id.slice(0, 8)} placed`;
    select(order.id);
  } catch (error) {
    $("buy-result").textContent = error.message;
  }
});

$("rate").addEventListener("input", () => { $("rate-shown").textContent = `${$("rate").value}%`; });

$("failure-rate").addEventListener("submit", async (submit) => {
  submit.preventDefault();
  try {
    const set = await sendJson("PUT", "/payments/failure-rate", { failureRate: Number($("rate").value) / 100 });
    $("rate-result").textContent = `payments now decline ${Math.round(set.failureRate * 100)}%`;
  } catch (error) {
    $("rate-result").textContent = error.message;
  }
});

async function showFailureRate() {
  const { failureRate } = await getJson("/payments/failure-rate");
  $("rate").value = Math.round(failureRate * 100);
  $("rate-shown").textContent = `${$("rate").value}%`;
}

// ---- talking to the API ----------------------------------------------------------------------

async function getJson(path) {
  return answer(await fetch(path, { headers: authorized({ Accept: "application/json" }) }));
}

async function sendJson(method, path, body) {
  const init = { method, headers: authorized({ Accept: "application/json" }) };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  return answer(await fetch(path, init));
}

class Refused extends Error {
  constructor(message, status, retryAfter) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

async function answer(response) {
  if (response.status === 401 || response.status === 403) askForToken(response.status);
  const body = await response.json();
  if (!response.ok) {
    const message = body.error ? body.error.message : `HTTP ${response.status}`;
    throw new Refused(message, response.status, Number(response.headers.get("Retry-After")));
  }
  return body;
}

// What failed, by who asked: a refresh's error stays while that refresh fails, and goes as soon
// as it succeeds again; another request's goes with the next success of anything. The page never
// shows a stale error.
const failing = new Map();

function report(error, who = "action") {
  failing.set(who, error.message);
  showFailing();
}

function succeeded(who) {
  failing.delete(who);
  failing.delete("action");
  showFailing();
}

function showFailing() {
  if (!$("token-form").hidden) return;
  if (failing.size) setConnection("lost", `error: ${[...failing.values()].at(-1)}`);
  else if ($("connection").textContent.startsWith("error")) {
    setConnection(state.stream.flag, state.stream.text);
  }
}

// Each refresh waits for the one before; told "too many requests" (429), it waits as long as
// the server's Retry-After says (or backs off, doubling up to a minute) before asking again.
function every(milliseconds, work) {
  let wait = milliseconds;
  const run = async () => {
    try {
      if (!document.hidden) {
        await work();
        succeeded(work);
      }
      wait = milliseconds;
    } catch (error) {
      report(error, work);
      if (error instanceof Refused && error.status === 429) {
        wait = error.retryAfter > 0 ? error.retryAfter * 1000 : Math.min(wait * 2, 60_000);
      }
    }
    setTimeout(run, wait);
  };
  run();
}

function animate() {
  let last = 0;
  const frame = (time) => {
    if (time - last > 100) { draw(); last = time; }
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
}

showPlayers();
listen();
animate();
every(REFRESH_MS, refreshCounters);
every(REFRESH_MS, refreshOrders);
every(5 * REFRESH_MS, refreshItems);
showFailureRate().catch(report);
