// The DeepServe playground: four panels calling this service's own API (no other origin, no libraries).
"use strict";

const HOST = location.origin;
const $ = (id) => document.getElementById(id);

async function call(path, options) {
  // fetch + the service's error contract: throws the service's own message.
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error((body.error && body.error.message) || `HTTP ${response.status}`);
    error.body = body.error || {};
    error.status = response.status;
    throw error;
  }
  return body;
}

function bars(list, items) {
  list.replaceChildren(...items.map(([label, score]) => {
    const li = document.createElement("li");
    const name = document.createElement("span");
    name.textContent = label;
    const bar = document.createElement("span");
    bar.className = "bar";
    const fill = document.createElement("span");
    fill.style.width = `${(100 * score).toFixed(1)}%`;
    bar.append(fill);
    const value = document.createElement("span");
    value.textContent = `${(100 * score).toFixed(1)}%`;
    li.append(name, bar, value);
    return li;
  }));
}

function oodBadge(slot, body, question) {
  // "Not what the model was trained on?": shown when an answer says in_distribution false (not when true or null),
  // with the service's reason and the score behind it (above 1.0 is flagged); empty and hidden otherwise.
  slot.replaceChildren();
  slot.title = "";
  slot.hidden = !body || body.in_distribution !== false;
  if (slot.hidden) return;
  const title = document.createElement("strong");
  title.textContent = question;
  const score = typeof body.ood_score === "number" ? `ood_score ${body.ood_score.toFixed(2)}` : "no score";
  const why = document.createElement("span");
  why.textContent = ` ${body.ood_reason || "unlike the training data"} (${score}; above 1.0 is flagged)`;
  slot.title = body.ood_reason || "";
  slot.append(title, why);
}
function badgeSlot() {
  const slot = document.createElement("p");
  slot.className = "ood";
  slot.setAttribute("role", "status");
  slot.hidden = true;
  return slot;
}

const COLOURS = [[0, 0, 80], [120, 0, 160], [230, 40, 40], [255, 200, 0], [255, 255, 160]];
const METHODS = { "gradient-x-input": "gradient × input", "grad-cam": "Grad-CAM" };

function heatColour(v) {
  const p = Math.max(0, Math.min(1, v)) * (COLOURS.length - 1);
  const i = Math.min(Math.floor(p), COLOURS.length - 2), t = p - i;
  return COLOURS[i].map((c, k) => Math.round(c * (1 - t) + COLOURS[i + 1][k] * t));
}

function paintGrid(canvas, grid, colour) {
  // A rows x columns grid of 0..1 values, scaled up with sharp pixels.
  const rows = grid.length, cols = grid[0].length;
  const small = new ImageData(cols, rows);
  grid.forEach((row, y) => row.forEach((v, x) => {
    const [r, g, b] = colour(v);
    small.data.set([r, g, b, 255], 4 * (y * cols + x));
  }));
  const scratch = document.createElement("canvas");
  scratch.width = cols; scratch.height = rows;
  scratch.getContext("2d").putImageData(small, 0, 0);
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(scratch, 0, 0, canvas.width, canvas.height);
  canvas.dataset.painted = "true";
}

// ---- Digit -------------------------------------------------------------------------------------------------
const pad = $("pad"), padCtx = pad.getContext("2d");
function clearPad() {
  padCtx.fillStyle = "#fff";
  padCtx.fillRect(0, 0, pad.width, pad.height);
  padCtx.lineWidth = 18; padCtx.lineCap = "round"; padCtx.lineJoin = "round"; padCtx.strokeStyle = "#000";
}
clearPad();
let drawing = false, inked = false, pending = null, sending = false, again = false;
function at(event) {
  const box = pad.getBoundingClientRect();
  return [(event.clientX - box.left) * pad.width / box.width, (event.clientY - box.top) * pad.height / box.height];
}
pad.addEventListener("pointerdown", (e) => {
  drawing = true; inked = true; pad.setPointerCapture(e.pointerId);
  const [x, y] = at(e); padCtx.beginPath(); padCtx.moveTo(x, y); padCtx.lineTo(x + 0.1, y + 0.1); padCtx.stroke();
});
pad.addEventListener("pointermove", (e) => {
  if (!drawing) return;
  const [x, y] = at(e); padCtx.lineTo(x, y); padCtx.stroke();
  if (!pending) pending = setTimeout(() => { pending = null; explainDigit(); }, 250);  // live, as you draw
});
const stop = () => { if (drawing) { drawing = false; explainDigit(); } };
pad.addEventListener("pointerup", stop);
pad.addEventListener("pointercancel", stop);
function blank(canvas) {
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  delete canvas.dataset.painted;
}
function clearDigitAnswer() {
  $("digit-answer").textContent = "–"; $("digit-confidence").textContent = "";
  $("digit-probs").replaceChildren(); blank($("digit-input")); blank($("digit-heat")); oodBadge($("digit-ood"), null);
}
$("clear").addEventListener("click", () => {
  clearPad(); inked = false; clearDigitAnswer(); $("digit-error").textContent = "";
});

// Each panel shows the answer to its latest request only: one to an earlier request still in flight (a drawing, a
// photo sent to another model) is dropped when it arrives. turn() starts a request; current() says it is the latest.
function turns() {
  let latest = 0;
  return () => { const mine = ++latest; return () => mine === latest; };
}
const digitTurn = turns(), photoTurn = turns(), reviewTurn = turns(), seriesTurn = turns();

async function sendDigit(blob) {
  const current = digitTurn();
  const form = new FormData();
  form.append("file", blob, "digit.png");
  try {
    const body = await call("/explain/digit", { method: "POST", body: form });
    if (!current()) return;
    $("digit-error").textContent = "";
    $("digit-answer").textContent = body.digit;
    $("digit-confidence").textContent = `(${(100 * body.confidence).toFixed(1)}%)`;
    oodBadge($("digit-ood"), body, "not a digit?");
    bars($("digit-probs"), body.probabilities.map((p, d) => [String(d), p]));
    paintGrid($("digit-input"), body.input, (v) => [255 * v, 255 * v, 255 * v]);
    paintGrid($("digit-heat"), body.heatmap_input, heatColour);
    $("digit-method").textContent = METHODS[body.method] || body.method;
  } catch (error) {
    if (!current()) return;
    clearDigitAnswer();  // no answer from before stays next to the error
    $("digit-error").textContent = error.message;
  }
}
function explainDigit() {
  if (!inked) return;
  if (sending) { again = true; return; }  // one request at a time; the latest drawing wins
  sending = true;
  pad.toBlob(async (blob) => {
    await sendDigit(blob);
    sending = false;
    if (again) { again = false; explainDigit(); }
  }, "image/png");
}
$("digit-file").addEventListener("change", (e) => {
  if (!e.target.files[0]) return;
  clearPad(); inked = false;  // the answer is the uploaded image's, not the drawing's
  sendDigit(e.target.files[0]);
  e.target.value = "";  // choosing the same file again is a change too
});
$("digit-curl").textContent = `curl -s -F file=@digit.png ${HOST}/explain/digit`;

// ---- Photo -------------------------------------------------------------------------------------------------
async function sendPhoto(file) {
  const current = photoTurn();
  const model = $("photo-model").value;
  $("photo-curl").textContent = `curl -s -F file=@${file.name || "photo.jpg"} '${HOST}/explain/image?model=${model}'`;
  $("photo-error").textContent = ""; $("photo-install").hidden = true; $("photo-note").textContent = "";
  $("photo-answer").textContent = "–"; $("photo-topk").replaceChildren(); $("photo-overlay").hidden = true;
  oodBadge($("photo-ood"), null);
  const form = () => { const f = new FormData(); f.append("file", file, file.name || "photo.jpg"); return f; };
  let body;
  try {
    try {
      body = await call(`/explain/image?model=${encodeURIComponent(model)}`, { method: "POST", body: form() });
      if (!current()) return;
      $("photo-overlay").src = `data:image/png;base64,${body.overlay_png}`;
      $("photo-overlay").hidden = false;
      $("photo-note").textContent = `Heatmap: ${METHODS[body.method] || body.method}`;
    } catch (error) {
      if (error.body.type !== "explanation_unavailable") throw error;
      body = await call(`/predict/image?model=${encodeURIComponent(model)}`, { method: "POST", body: form() });
      if (!current()) return;
      $("photo-overlay").hidden = true;
      $("photo-note").textContent = `No heatmap: ${error.message}`;
    }
    $("photo-answer").textContent = body.label;
    oodBadge($("photo-ood"), body, PHOTO_QUESTIONS[model] || "not like the training images?");
    bars($("photo-topk"), body.top_k.map((s) => [s.label, s.score]));
  } catch (error) {
    if (!current()) return;
    if (error.body.type === "model_not_installed") {
      const box = $("photo-install");
      box.replaceChildren();
      const title = document.createElement("strong");
      title.textContent = `Model "${model}" is not installed. How to install it:`;
      const command = document.createElement("pre");
      command.textContent = error.body.detail && error.body.detail.install;
      box.append(title, command);
      box.hidden = false;
    } else {
      $("photo-error").textContent = error.message;
    }
  }
}
const PHOTO_QUESTIONS = { fashion: "not a garment?" };
let lastPhoto = null;
$("photo-file").addEventListener("change", (e) => {
  if (e.target.files[0]) { lastPhoto = e.target.files[0]; sendPhoto(lastPhoto); }
  e.target.value = "";  // choosing the same file again is a change too
});
$("photo-model").addEventListener("change", () => { if (lastPhoto) sendPhoto(lastPhoto); });
const drop = $("photo-drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault(); drop.classList.remove("over");
  if (e.dataTransfer.files[0]) { lastPhoto = e.dataTransfer.files[0]; sendPhoto(lastPhoto); }
});
$("photo-curl").textContent = `curl -s -F file=@photo.jpg '${HOST}/explain/image?model=image'`;

// ---- Review ------------------------------------------------------------------------------------------------
function highlighted(text, words) {
  // The text as written, each word tinted by its attribution (green: towards positive, red: towards negative).
  const out = document.createElement("p");
  out.className = "words";
  const peak = Math.max(1e-6, ...words.map((w) => Math.abs(w.attribution)));
  let at = 0;
  for (const w of words) {
    out.append(text.slice(at, w.start));
    const span = document.createElement("span");
    span.textContent = text.slice(w.start, w.end);
    const strength = Math.abs(w.attribution) / peak;
    const [r, g, b] = w.attribution >= 0 ? [46, 160, 67] : [207, 34, 46];
    span.style.background = `rgba(${r}, ${g}, ${b}, ${(0.6 * strength).toFixed(2)})`;
    span.title = `${w.attribution >= 0 ? "+" : ""}${w.attribution.toFixed(3)}`;
    span.className = w.attribution >= 0 ? "attr-pos" : "attr-neg";
    out.append(span);
    at = w.end;
  }
  out.append(text.slice(at));
  return out;
}
async function explainReview() {
  const current = reviewTurn();
  const text = $("review-text").value;
  const choice = $("review-model").value;
  const models = choice === "all" ? installedSentiment : [choice];
  $("review-error").textContent = "";
  $("review-curl").textContent = models.map((m) => `curl -s -H 'content-type: application/json' -d '${
    JSON.stringify({ text, model: m }).replace(/'/g, "'\\''")}' ${HOST}/explain/sentiment`).join("\n");
  const results = $("review-results");
  results.replaceChildren();
  for (const model of models) {
    const block = document.createElement("div");
    const heading = document.createElement("h3");
    block.append(heading);
    results.append(block);
    try {
      const body = await call("/explain/sentiment", {
        method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ text, model }),
      });
      if (!current()) return;
      heading.textContent = `${model}: ${body.label} (P(positive) ${body.score.toFixed(3)})`;
      const badge = badgeSlot();
      oodBadge(badge, body, "not like the training text?");
      block.append(badge, highlighted(text, body.words));
    } catch (error) {
      if (!current()) return;
      heading.textContent = `${model}: ${error.message}`;
      heading.className = "error";
    }
  }
}
$("review-go").addEventListener("click", explainReview);

// ---- Series ------------------------------------------------------------------------------------------------
function parseSeries(text) {
  const values = [], timestamps = [];
  for (const line of text.split(/\r?\n/)) {
    const cells = line.split(",").map((c) => c.trim()).filter((c) => c !== "");
    if (!cells.length) continue;
    const value = Number(cells[cells.length - 1]);
    if (!Number.isFinite(value)) continue;  // a header line
    values.push(value);
    if (cells.length > 1) timestamps.push(cells[0]);
  }
  return timestamps.length === values.length && values.length ? { values, timestamps } : { values };
}
async function exampleSeries() {
  // The bundled example: three synthetic weeks, half-hourly, with one burst (the README's examples/series.json).
  const body = await call("/static/example_series.json");
  return body.values.map((v, i) => `${body.timestamps[i]},${v}`).join("\n");
}
function svg(tag, attributes) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, v);
  return node;
}
function drawSeries(values, body) {
  const chart = $("series-chart");
  chart.replaceChildren();
  const lower = body.lower || (body.band && body.band.lower), upper = body.upper || (body.band && body.band.upper);
  const all = values.concat(lower || [], upper || [], body.expected || []).filter(Number.isFinite);
  const lo = Math.min(...all), hi = Math.max(...all);
  const W = 800, H = 240, pad = 10;
  const x = (i) => pad + (W - 2 * pad) * i / Math.max(1, values.length - 1);
  const y = (v) => H - pad - (H - 2 * pad) * (v - lo) / Math.max(1e-9, hi - lo);
  for (const r of body.regions || []) {
    chart.append(svg("rect", { x: x(r.start), y: 0, width: Math.max(2, x(r.end) - x(r.start)), height: H,
      fill: "#f4b6b6", class: "region" }));
  }
  if (lower && upper) {
    const top = upper.map((v, i) => `${x(i)},${y(v)}`), bottom = lower.map((v, i) => `${x(i)},${y(v)}`).reverse();
    chart.append(svg("polygon", { points: top.concat(bottom).join(" "), fill: "#cfe0fb", class: "band" }));
  }
  if (body.expected) {
    chart.append(svg("polyline", { points: body.expected.map((v, i) => `${x(i)},${y(v)}`).join(" "),
      fill: "none", stroke: "#7aa7e8", "stroke-width": 1, class: "expected" }));
  }
  chart.append(svg("polyline", { points: values.map((v, i) => `${x(i)},${y(v)}`).join(" "), fill: "none",
    stroke: "#1a1a1a", "stroke-width": 1, class: "values" }));
  (body.is_anomaly || []).forEach((flag, i) => {
    if (flag) chart.append(svg("circle", { cx: x(i), cy: y(values[i]), r: 2.5, fill: "#a40000", class: "flag" }));
  });
}
async function scoreSeries() {
  const current = seriesTurn();
  $("series-error").textContent = ""; $("series-summary").textContent = ""; $("series-chart").replaceChildren();
  const series = parseSeries($("series-text").value);
  const payload = JSON.stringify(series);
  $("series-curl").textContent = `curl -s -H 'content-type: application/json' -d @series.json ${HOST}/predict/anomaly
# series.json: ${payload.length > 120 ? payload.slice(0, 120) + "..." : payload}`;
  try {
    const body = await call("/predict/anomaly", {
      method: "POST", headers: { "content-type": "application/json" }, body: payload,
    });
    if (!current()) return;
    const flagged = (body.is_anomaly || []).filter(Boolean).length;
    $("series-summary").textContent =
      `${series.values.length} points, ${flagged} flagged, ${(body.regions || []).length} alarm region(s)`;
    drawSeries(series.values, body);
  } catch (error) {
    if (!current()) return;
    $("series-error").textContent = error.message;
  }
}
$("series-example").addEventListener("click", async () => { $("series-text").value = await exampleSeries(); scoreSeries(); });
$("series-file").addEventListener("change", async (e) => {
  if (e.target.files[0]) { $("series-text").value = await e.target.files[0].text(); scoreSeries(); }
});
$("series-go").addEventListener("click", scoreSeries);

// ---- From the service's metadata (GET /models): every model of each task (a new family appears by itself), the
// API's default chosen first (else the first ready one), "all" = the installed ones, the series' minimum length ----
let installedSentiment = ["minilm", "lstm"];
function fill(select, names, preferred, all) {
  const chosen = select.dataset.touched ? select.value : preferred;
  const options = names.map((name) => [name, name]);
  if (all) options.push(["all", `all (${all.join(" + ")})`]);
  select.replaceChildren(...options.map(([value, text]) => {
    const option = document.createElement("option");
    option.value = value;
    option.textContent = text;
    return option;
  }));
  if (options.some(([value]) => value === chosen)) select.value = chosen;
}
for (const id of ["review-model", "photo-model"]) {
  $(id).addEventListener("change", (e) => { e.target.dataset.touched = "1"; });
}
call("/models").then((models) => {
  const ready = (m) => m.state === "ready";
  const of = (task) => models.filter((m) => m.task === task);
  const first = (list) => (list.find((m) => m.default && ready(m)) || list.find(ready) || list[0] || {}).name;
  const sentiment = of("text-classification/sentiment"), images = of("image-classification");
  if (sentiment.length) {
    installedSentiment = sentiment.filter(ready).map((m) => m.name);
    fill($("review-model"), sentiment.map((m) => m.name), first(sentiment), installedSentiment);
  }
  if (images.length) fill($("photo-model"), images.map((m) => m.name), first(images));
  const detector = of("anomaly-detection/timeseries").find((m) => m.default);
  if (detector && detector.input && detector.input.min_points) $("series-min").textContent = detector.input.min_points;
}).catch(() => {});  // the built-in choices stay
