// The saga monitor. Everything it shows comes from the front door's own API: the live steps
// from /monitor/events (server-sent events), counters from /summary, orders from /orders and
// /user/{id}/orders, dead letters from /dead-letters.
// The lanes count every step into half-second bins (per service and kind) and keep only a
// bounded window of single steps (MAX_STEPS, and every refusal up to MAX_REFUSALS): where a bin
// holds more than can be drawn as marks it is drawn as a bar of steps per second, refusals
// always as marks. It redraws a canvas ten times a second, so a bench run at hundreds of steps
// a second never grows the page.
"use strict";

const SERVICES = document.body.dataset.services.split(" ");
const COLORS = { forward: "#2e8b57", failure: "#c93c3c", compensation: "#d98b1c" };
const KINDS = Object.keys(COLORS);
const WINDOW_MS = 30_000;
const BIN_MS = 500;
const MARKS_PER_BIN = 3;
const MAX_STEPS = 4_000;
const MAX_REFUSALS = 2_000;
const PATHS_DRAWN = 12;
const REFRESH_MS = 2_000;
const LETTERS_EVERY_MS = 20_000;
const PAGE_SIZE = 25;
const PLAYERS_KEY = "sagashop.players";

const $ = (id) => document.getElementById(id);
const state = {
  steps: [], refusals: [], bins: new Map(), drawn: [], seen: 0, missed: 0, filter: "",
  selected: null, timeline: [], clockSkew: null, droppedUntil: -Infinity,
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
  let delay = Infinity;
  for (const step of steps) {
    const at = Date.parse(step.at);
    if (Number.isNaN(at) || !SERVICES.includes(step.service)) continue;
    delay = Math.min(delay, now - at);
    const kind = COLORS[step.kind] ? step.kind : "forward";
    const kept = {
      at, lane: SERVICES.indexOf(step.service), kind, orderId: String(step.orderId),
      step: step.step, event: step.event, x: 0, y: 0,
    };
    count(kept);
    state.steps.push(kept);
    if (kind === "failure") state.refusals.push(kept);
  }
  if (delay !== Infinity) noteSkew(delay);
  const over = state.steps.length - MAX_STEPS;
  if (over > 0) state.droppedUntil = Math.max(state.droppedUntil, state.steps[over - 1].at);
  dropFirst(state.steps, over);
  dropFirst(state.refusals, state.refusals.length - MAX_REFUSALS);
  state.seen += steps.length;
  state.missed += missed;
  if (state.selected && steps.some((step) => step.orderId === state.selected)) {
    showTimeline(state.selected).catch(report);
  }
}

function noteSkew(delay) {
  // Server time is drawn on our clock. The smallest delay seen is the clocks' difference plus the
  // least latency, and steady; a batch's latest step is up to a flush (0.25 s) older than the
  // next one's, so taking each batch's as it came shook every mark sideways from batch to batch.
  // It creeps up slowly, in case a clock drifts.
  if (state.clockSkew === null || delay < state.clockSkew) state.clockSkew = delay;
  else state.clockSkew += (delay - state.clockSkew) * 0.01;
}

function serverNow() {
  return Date.now() - (state.clockSkew || 0);
}

function dropFirst(list, count) {
  if (count > 0) list.splice(0, count);
}

function dropBefore(list, oldest) {
  const first = list.findIndex((step) => step.at >= oldest);
  dropFirst(list, first < 0 ? list.length : first);
}

function count(step) {
  const key = Math.floor(step.at / BIN_MS);
  let counts = state.bins.get(key);
  if (!counts) state.bins.set(key, (counts = new Uint32Array(SERVICES.length * KINDS.length)));
  counts[step.lane * KINDS.length + KINDS.indexOf(step.kind)] += 1;
}

// ---- the swimlanes ---------------------------------------------------------------------------

const canvas = $("lanes");
const LABEL_WIDTH = 110;
const AXIS_HEIGHT = 22;
const TICK_MS = 5_000;
const HIT = 7;

function laneHeight() {
  return (canvas.height - AXIS_HEIGHT) / SERVICES.length;
}

function laneY(lane) {
  return lane * laneHeight() + laneHeight() / 2;
}

function timeX(at, now) {
  const width = canvas.width - LABEL_WIDTH - 10;
  return LABEL_WIDTH + width * (1 - (now - at) / WINDOW_MS);
}

function draw() {
  const now = serverNow();
  const oldest = now - WINDOW_MS;
  dropBefore(state.steps, oldest);
  dropBefore(state.refusals, oldest);
  for (const key of state.bins.keys()) if ((key + 1) * BIN_MS < oldest) state.bins.delete(key);
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  drawLanes(context);
  drawAxis(context, now);
  const crowded = drawBars(context, now);
  if (!crowded) drawPaths(context, now);
  drawSelectedPath(context, now);
  state.drawn.length = 0;
  for (const step of state.steps) {
    if (step.kind !== "failure" && !isBar(step.lane, Math.floor(step.at / BIN_MS))) {
      drawMark(context, step, now);
    }
  }
  for (const step of state.refusals) drawMark(context, step, now); // on top: always clickable
}

function drawLanes(context) {
  context.font = "13px system-ui, sans-serif";
  context.textBaseline = "middle";
  context.textAlign = "left";
  SERVICES.forEach((service, lane) => {
    context.fillStyle = lane % 2 ? "#ffffff" : "#f7f8fb";
    context.fillRect(0, lane * laneHeight(), canvas.width, laneHeight());
    context.fillStyle = "#1d2330";
    context.fillText(service, 10, laneY(lane));
  });
}

function drawAxis(context, now) {
  // A tick every 5 s of server time, labelled with the time of day; a faint line up the lanes.
  const bottom = canvas.height - AXIS_HEIGHT;
  context.font = "11px system-ui, sans-serif";
  context.textAlign = "center";
  context.textBaseline = "top";
  for (let tick = Math.ceil((now - WINDOW_MS) / TICK_MS) * TICK_MS; tick <= now; tick += TICK_MS) {
    const x = timeX(tick, now);
    if (x < LABEL_WIDTH + 20) continue;
    context.fillStyle = "rgba(29, 35, 48, 0.08)";
    context.fillRect(x, 0, 1, bottom);
    context.fillStyle = "#667085";
    context.fillText(new Date(tick + (state.clockSkew || 0)).toLocaleTimeString(), x, bottom + 5);
  }
  context.textAlign = "left";
  context.fillText("time", 10, bottom + 5);
}

function isBar(lane, key) {
  // A bin is a bar if it holds more steps than fit as marks, or steps no longer kept one by one.
  const counts = state.bins.get(key);
  if (!counts) return false;
  const base = lane * KINDS.length;
  const many = counts[base] + counts[base + 1] > MARKS_PER_BIN;
  return many || key * BIN_MS <= state.droppedUntil;
}

function drawBars(context, now) {
  // Forward steps (green) and compensations (orange) per second, stacked, to one scale for all
  // lanes; answers whether any bin was a bar (then the sagas' paths would only be a tangle).
  let peak = 0;
  for (const [key, counts] of state.bins) {
    for (let lane = 0; lane < SERVICES.length; lane++) {
      const base = lane * KINDS.length;
      if (isBar(lane, key)) peak = Math.max(peak, counts[base] + counts[base + 1]);
    }
  }
  const room = laneHeight() - 6;
  for (const [key, counts] of state.bins) {
    const left = Math.max(LABEL_WIDTH, timeX(key * BIN_MS, now));
    const width = timeX((key + 1) * BIN_MS, now) - left - 1;
    for (let lane = 0; lane < SERVICES.length && width > 0; lane++) {
      if (!isBar(lane, key)) continue;
      const base = lane * KINDS.length;
      const bottom = (lane + 1) * laneHeight() - 3;
      const [forward, undone] = [(counts[base] / peak) * room, (counts[base + 1] / peak) * room];
      context.fillStyle = "rgba(46, 139, 87, 0.55)";
      context.fillRect(left, bottom - forward, width, forward);
      context.fillStyle = "rgba(217, 139, 28, 0.8)";
      context.fillRect(left, bottom - forward - undone, width, undone);
    }
  }
  const scale = peak ? `: a full bar is ${Math.round((peak * 1000) / BIN_MS)} steps/s` : "";
  if ($("bar-scale").textContent !== scale) $("bar-scale").textContent = scale;
  return peak > 0;
}

function drawPaths(context, now) {
  const latest = [];
  for (let i = state.steps.length - 1; i >= 0 && latest.length < PATHS_DRAWN; i--) {
    const id = state.steps[i].orderId;
    if (!latest.includes(id) && id !== state.selected) latest.push(id);
  }
  context.strokeStyle = "rgba(29, 35, 48, 0.18)";
  context.lineWidth = 1;
  for (const id of latest) drawPath(context, now, state.steps.filter((step) => step.orderId === id));
}

function drawSelectedPath(context, now) {
  // From its timeline, so it is drawn whole however many single steps the page has dropped.
  context.strokeStyle = "#1d2330";
  context.lineWidth = 2;
  drawPath(context, now, state.timeline);
}

function drawPath(context, now, path) {
  context.beginPath();
  path.forEach((step, i) => {
    const [x, y] = [timeX(step.at, now), laneY(step.lane)];
    if (i === 0) context.moveTo(x, y);
    else context.lineTo(x, y);
  });
  context.stroke();
}

function drawMark(context, step, now) {
  const [x, y] = [timeX(step.at, now), laneY(step.lane)];
  if (x < LABEL_WIDTH) return;
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
  step.x = x;
  step.y = y;
  state.drawn.push(step);
}

function markAt(pointer) {
  // The topmost mark under the pointer, where it was last drawn: what the eye sees there. (Once
  // it was the nearest step's centre recomputed at the click, on a clock estimate each batch had
  // moved since: under load, a hidden dot of another order won.)
  const box = canvas.getBoundingClientRect();
  const x = (pointer.clientX - box.left) * (canvas.width / box.width);
  const y = (pointer.clientY - box.top) * (canvas.height / box.height);
  for (let i = state.drawn.length - 1; i >= 0; i--) {
    const mark = state.drawn[i];
    if (Math.abs(mark.x - x) <= HIT && Math.abs(mark.y - y) <= HIT) return mark;
  }
  return null;
}

canvas.addEventListener("click", (click) => {
  const mark = markAt(click);
  if (mark) select(mark.orderId);
});

canvas.addEventListener("mousemove", (move) => {
  const mark = markAt(move);
  canvas.style.cursor = mark ? "pointer" : "default";
  const what = mark && `${SERVICES[mark.lane]}.${mark.step}${mark.event ? ` → ${mark.event}` : ""}`;
  canvas.title = mark ? `${what} · order ${mark.orderId.slice(0, 8)}` : "";
});

// ---- counters --------------------------------------------------------------------------------

let seenBefore = 0;

async function refreshCounters() {
  const summary = await getJson("/summary");
  $("count-completed").textContent = summary.orders.COMPLETED;
  $("count-cancelled").textContent = summary.orders.CANCELLED;
  $("count-in-flight").textContent = summary.inFlight;
  const deadBefore = $("count-dead").textContent;
  $("count-dead").textContent = summary.deadLetters;
  if (deadBefore !== "–" && deadBefore !== String(summary.deadLetters)) refreshLetters().catch(report);
  const by = Object.entries(summary.cancelledBy).sort((a, b) => b[1] - a[1]);
  $("cancelled-by").textContent = by.map(([service, n]) => `${service} ${n}`).join(" · ");
  $("step-rate").textContent = Math.round(((state.seen - seenBefore) * 1000) / REFRESH_MS);
  seenBefore = state.seen;
  $("missed").textContent = state.missed ? `${state.missed} not drawn (sampled)` : "";
}

// ---- orders: the latest, a search, a player's; a page at a time -----------------------------

// Pages are the API's keyset pages: `cursors[n]` is the cursor page n was read from (null for
// the first), so "newer" goes back to a page already seen and "older" follows `next`. Only the
// first page of the latest refreshes itself; a page further on stays as it was read, so paging
// while orders arrive shows each order once.
const list = { kind: "latest", text: "", cursors: [null], page: 0, next: null, asked: 0 };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function listPath() {
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  const cursor = list.cursors[list.page];
  if (cursor) query.set("cursor", cursor);
  if (list.kind === "player") return `/user/${encodeURIComponent(list.text)}/orders?${query}`;
  if (state.filter) query.set("status", state.filter);
  if (list.kind === "order") query.set("idPrefix", list.text);
  return `/orders?${query}`;
}

async function refreshOrders() {
  if (list.kind === "latest" && list.page === 0) await showOrders();
}

async function showOrders() {
  const asked = ++list.asked;
  const { orders, next } = await getJson(listPath());
  if (asked !== list.asked) return orders; // a later ask (a click) overtook this one
  list.next = next;
  $("order-rows").replaceChildren(...orders.map(orderRow));
  $("page-number").textContent = `page ${list.page + 1}${orders.length ? "" : ": none"}`;
  $("newer").disabled = list.page === 0;
  $("older").disabled = next === null;
  return orders;
}

function orderRow(order) {
  const row = document.createElement("tr");
  row.dataset.orderId = order.id;
  row.setAttribute("aria-selected", String(order.id === state.selected));
  const player = document.createElement("button");
  player.type = "button";
  player.className = "player";
  player.textContent = order.userId.slice(0, 8);
  player.title = `${order.userId}: this player's orders`;
  player.addEventListener("click", (click) => {
    click.stopPropagation();
    find("player", order.userId).catch(report);
  });
  const time = cell(clockTime(order.createdAt), "time");
  time.firstChild.dateTime = order.createdAt;
  const at = document.createElement("td");
  at.append(player);
  row.append(
    time,
    cell(order.id.slice(0, 8), "code"),
    at,
    cell(order.status, "span", `status-${order.status}`),
    cell(String(order.totalAmount)),
    cell(order.failureReason || ""),
  );
  row.addEventListener("click", () => select(order.id));
  return row;
}

function clockTime(text) {
  // The time of day; the date too when it is not today's.
  const at = new Date(text);
  if (Number.isNaN(at.getTime())) return "";
  const time = at.toLocaleTimeString();
  return at.toDateString() === new Date().toDateString() ? time : `${at.toLocaleDateString()} ${time}`;
}

function cell(text, tag = null, className = "") {
  const td = document.createElement("td");
  const inner = tag ? document.createElement(tag) : td;
  inner.textContent = text;
  if (className) inner.className = className;
  if (tag) td.append(inner);
  return td;
}

async function turnPage(step) {
  if (step > 0) list.cursors[list.page + 1] = list.next;
  list.page += step;
  await showOrders();
}

$("older").addEventListener("click", () => turnPage(1).catch(report));
$("newer").addEventListener("click", () => turnPage(-1).catch(report));

async function find(kind, text) {
  // An order by its id or first characters (GET /orders?idPrefix=, in id order), or a
  // player's orders (GET /user/{id}/orders); one order found is opened at once.
  $("search-by").value = kind;
  $("search-text").value = text;
  if (kind === "player" && !UUID.test(text)) throw new Error("a player's id is a whole UUID");
  if (kind === "order" && !/^[0-9a-f-]{1,36}$/.test(text)) {
    throw new Error("an order's id is hex digits and dashes, as 5d950d23-0359-…");
  }
  Object.assign(list, { kind, text, cursors: [null], page: 0 });
  for (const button of document.querySelectorAll("#filters button")) {
    button.disabled = kind === "player"; // a player's list is every order of theirs
  }
  $("orders-title").textContent = kind === "player"
    ? `player ${text}'s, newest first` : `whose id begins with ${text}, in id order`;
  const orders = await showOrders();
  $("search-result").textContent = orders.length ? "" : "no such order";
  if (orders.length === 1 && list.next === null) select(orders[0].id);
}

function showLatest() {
  Object.assign(list, { kind: "latest", text: "", cursors: [null], page: 0 });
  for (const button of document.querySelectorAll("#filters button")) button.disabled = false;
  $("orders-title").textContent = "the latest";
  $("search-result").textContent = "";
  return showOrders();
}

$("search").addEventListener("submit", async (submit) => {
  submit.preventDefault();
  try {
    await find($("search-by").value, $("search-text").value.trim().toLowerCase());
  } catch (error) {
    $("search-result").textContent = error.message;
  }
});

$("search-clear").addEventListener("click", () => showLatest().catch(report));

for (const button of document.querySelectorAll("#filters button")) {
  button.addEventListener("click", () => {
    state.filter = button.dataset.status;
    for (const other of document.querySelectorAll("#filters button")) {
      other.setAttribute("aria-pressed", String(other === button));
    }
    Object.assign(list, { cursors: [null], page: 0 });
    showOrders().catch(report);
  });
}

// ---- one order's timeline --------------------------------------------------------------------

function select(orderId) {
  state.selected = orderId;
  state.timeline = [];
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
  state.timeline = order.steps
    .map((step) => ({ at: Date.parse(step.at), lane: SERVICES.indexOf(step.service) }))
    .filter((step) => step.lane >= 0);
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

// The failures the original project's README teaches, each refused one step further along. Each
// makes a player and an item of its own through the public API, set so that this purchase alone
// is refused where it should be: the rest of the shop is not touched.
const FAILURES = {
  poor: { title: "a player too poor", balance: 500, price: 1_000, stock: 10, quantity: 1 },
  bag: { title: "a bag too full", balance: 50_000, price: 100, stock: 50, quantity: 21 },
  stock: { title: "an item out of stock", balance: 50_000, price: 1_000, stock: 1, quantity: 2 },
  // past the payment mock's card limit (100,000,000 at once): declined whatever the rate
  declined: {
    title: "a payment declined", balance: 200_000_000, price: 150_000_000, stock: 10, quantity: 1,
  },
};

async function provoke(name) {
  const plan = FAILURES[name];
  $("failure-result").textContent = `${plan.title}: starting…`;
  const [user, item] = await Promise.all([
    sendJson("POST", "/users", { username: `${name}-${Date.now() % 100_000}`, balance: plan.balance }),
    sendJson("POST", "/items", { name: `for ${plan.title}`, price: plan.price, stock: plan.stock }),
  ]);
  const body = { userId: user.id, itemId: item.id, quantity: plan.quantity };
  const order = await sendJson("POST", "/orders", body);
  $("failure-result").textContent = `${plan.title}: ${user.username} (balance ${user.balance}) ` +
    `buys ${plan.quantity} × ${item.price} of ${item.stock} in stock, order ${order.id.slice(0, 8)}`;
  select(order.id);
}

for (const button of document.querySelectorAll("#failures button")) {
  button.addEventListener("click", () => {
    provoke(button.dataset.failure).catch((error) => {
      $("failure-result").textContent = `${FAILURES[button.dataset.failure].title}: ${error.message}`;
    });
  });
}

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

// ---- dead letters ----------------------------------------------------------------------------

// Read when the page opens, when the count of waiting letters changes, every 20 s (a letter
// closed with its failure event is not counted) and after a replay: each read asks every
// service, so not on every refresh.
const letters = { next: null };

async function refreshLetters() {
  const page = await getJson(`/dead-letters?limit=${PAGE_SIZE}`);
  letters.next = page.next;
  $("letter-rows").replaceChildren(...page.deadLetters.map(letterRow));
  showLetterCount();
}

async function moreLetters() {
  const page = await getJson(`/dead-letters?limit=${PAGE_SIZE}&cursor=${encodeURIComponent(letters.next)}`);
  letters.next = page.next;
  $("letter-rows").append(...page.deadLetters.map(letterRow));
  showLetterCount();
}

function showLetterCount() {
  $("letters-none").hidden = $("letter-rows").children.length > 0;
  $("more-letters").hidden = letters.next === null;
}

function letterRow(letter) {
  const row = document.createElement("tr");
  row.dataset.letterId = letter.id;
  const event = letter.event && typeof letter.event.name === "string" ? letter.event.name : "";
  const when = cell(clockTime(letter.updatedAt), "time");
  row.append(
    cell(letter.id, "code"), cell(letter.service), cell(letter.step), cell(event),
    cell(letter.error), cell(String(letter.failures)), when, letterAction(letter),
  );
  return row;
}

function letterAction(letter) {
  const td = document.createElement("td");
  td.className = "action";
  if (letter.closedWith) {
    td.textContent = `closed with ${letter.closedWith}: nothing to replay`;
  } else if (letter.replayedAt) {
    td.textContent = `replayed ${clockTime(letter.replayedAt)}`;
  } else {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = "replay";
    button.addEventListener("click", () => replay(letter, td));
    td.append(button);
  }
  return td;
}

async function replay(letter, shown) {
  try {
    const done = await sendJson("POST", `/dead-letters/${encodeURIComponent(letter.id)}/replay`);
    shown.textContent = "replayed";
    $("letter-result").textContent = `${done.replayed}: its event went back to ${letter.service}; ` +
      `order ${done.orderId.slice(0, 8)} goes on from its ${letter.step} step (its timeline is open)`;
    select(done.orderId);
  } catch (error) {
    $("letter-result").textContent = `${letter.id}: ${error.message}`;
  }
  setTimeout(() => refreshLetters().catch(report), 1000);
}

$("more-letters").addEventListener("click", () => moreLetters().catch(report));

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
every(LETTERS_EVERY_MS, refreshLetters);
showFailureRate().catch(report);
