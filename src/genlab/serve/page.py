"""The one page of `genlab serve`: plain HTML, CSS and JavaScript, nothing fetched from the network.

It talks only to the same-origin JSON API of :mod:`genlab.serve.app`.
"""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>genlab serve</title>
<style>
  :root { font-family: system-ui, sans-serif; color: #222; background: #fafafa; }
  body { margin: 0 auto; max-width: 1100px; padding: 16px; }
  h1 { font-size: 1.3em; margin: 0 0 12px; }
  .controls { display: flex; flex-wrap: wrap; gap: 10px; align-items: end; margin-bottom: 12px; }
  label { display: flex; flex-direction: column; font-size: .8em; color: #555; gap: 2px; }
  [hidden] { display: none !important; }  /* else `label { display: flex }` shows the hidden class picker */
  input, select, button { font: inherit; font-size: .95rem; padding: 4px 6px; }
  input[type=number] { width: 9em; }
  button { cursor: pointer; border: 1px solid #888; border-radius: 4px; background: #fff; }
  button.primary { background: #2563eb; color: #fff; border-color: #2563eb; }
  .panels { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
  /* --cell and --frame: the model's image size times a whole number (setSizes), so pixels stay square */
  #grid { display: grid; grid-template-columns: repeat(8, var(--cell, 56px)); gap: 2px; background: #fff; padding: 4px;
          border: 1px solid #ddd; min-height: 60px; }
  #grid img { width: var(--cell, 56px); height: var(--cell, 56px); image-rendering: pixelated; }
  #frame { width: var(--frame, 224px); height: var(--frame, 224px); image-rendering: pixelated; border: 1px solid #ddd;
           background: #fff; }
  #slider { width: var(--frame, 224px); }
  .walk { display: flex; flex-direction: column; gap: 8px; }
  #error { color: #b00020; background: #fde8ea; border: 1px solid #f5c2c7; padding: 8px; border-radius: 4px; }
  #status, #pos { font-size: .85em; color: #555; }
</style>
</head>
<body>
<h1>genlab: sample a trained generator</h1>
<div id="error" role="alert" hidden></div>
<div class="controls">
  <label>model <select id="model"></select></label>
  <label>seed <input id="seed" type="number" min="0" step="1" value="0"></label>
  <label>images <select id="count"><option>16</option><option>32</option><option selected>64</option><option>128</option></select></label>
  <label id="label-box" hidden>class <select id="label"></select></label>
  <button id="draw" type="button">Draw this seed</button>
  <button id="sample" class="primary" type="button">New samples</button>
</div>
<div class="panels">
  <div>
    <div id="grid" aria-label="samples"></div>
    <div id="status"></div>
  </div>
  <div class="walk">
    <div class="controls">
      <label>walk to seed <input id="seed2" type="number" min="0" step="1" value="1"></label>
      <label>steps <input id="steps" type="number" min="0" max="500" step="1" value="30"></label>
      <button id="walk" type="button">Walk</button>
    </div>
    <img id="frame" alt="traversal frame">
    <input id="slider" type="range" min="0" max="0" value="0" aria-label="position along the traversal">
    <div id="pos"></div>
  </div>
</div>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let models = [];
let frames = [];
// answers can arrive out of order (a click while a draw is under way): only the latest is shown
let drawTicket = 0, walkTicket = 0;

async function api(path, params) {
  const r = await fetch(path + "?" + new URLSearchParams(params));
  const body = await r.json().catch(() => ({ error: r.status + " " + r.statusText }));
  if (!r.ok) throw new Error(body.error || (r.status + " " + r.statusText));
  return body;
}

function showError(msg) { $("error").textContent = msg || ""; $("error").hidden = !msg; }

function current() { return models.find((m) => m.name === $("model").value); }

function request() {
  const p = { model: $("model").value, seed: $("seed").value.trim(), count: $("count").value };
  if ($("label").value !== "") p.label = $("label").value;
  return p;
}

function png(b64) { return "data:image/png;base64," + b64; }

// each image at a whole multiple of its own size: 28 px digits at 2x (56 px), 64 px photos at 1x
function setSizes() {
  const m = current();
  if (!m) return;
  const h = m.image_shape[1];
  document.body.style.setProperty("--cell", h * Math.max(1, Math.round(56 / h)) + "px");
  document.body.style.setProperty("--frame", h * Math.max(1, Math.round(224 / h)) + "px");
}

function updateClasses() {
  const m = current();
  const box = $("label-box"), sel = $("label");
  sel.innerHTML = "";
  box.hidden = !(m && m.conditional);
  if (!box.hidden) {
    sel.add(new Option("all classes", ""));
    m.classes.forEach((name, i) => sel.add(new Option(name, String(i))));
  }
}

async function draw() {
  const t0 = performance.now();
  const ticket = ++drawTicket;
  try {
    const body = await api("/api/sample", request());
    if (ticket !== drawTicket) return;
    const grid = $("grid");
    grid.replaceChildren(...body.images.map((b, i) => {
      const img = new Image();
      img.src = png(b);
      img.alt = "sample " + i + (body.labels ? " (class " + body.labels[i] + ")" : "");
      return img;
    }));
    $("status").textContent = "seed " + body.seed + " \\u00b7 " + body.count + " images \\u00b7 "
      + Math.round(performance.now() - t0) + " ms";
    showError("");
    await walk();
  } catch (e) { if (ticket === drawTicket) showError(e.message); }
}

async function walk() {
  const ticket = ++walkTicket;
  try {
    const p = request();
    p.seed2 = $("seed2").value.trim();
    p.steps = $("steps").value.trim();
    const body = await api("/api/traverse", p);
    if (ticket !== walkTicket) return;
    frames = body.frames;
    $("slider").max = String(frames.length - 1);
    $("slider").value = "0";
    showFrame();
    showError("");
  } catch (e) { if (ticket === walkTicket) showError(e.message); }
}

function showFrame() {
  const i = Number($("slider").value);
  if (!frames.length) return;
  $("frame").src = png(frames[i]);
  $("pos").textContent = "step " + i + " of " + (frames.length - 1) + ": seed " + $("seed").value
    + " \\u2192 seed " + $("seed2").value;
}

function randomSeed() { return String(Math.floor(Math.random() * 1e9)); }

$("sample").addEventListener("click", () => { $("seed").value = randomSeed(); $("seed2").value = randomSeed(); draw(); });
$("draw").addEventListener("click", draw);
$("seed").addEventListener("keydown", (e) => { if (e.key === "Enter") draw(); });
$("count").addEventListener("change", draw);
$("label").addEventListener("change", draw);
$("model").addEventListener("change", () => { updateClasses(); setSizes(); draw(); });
$("walk").addEventListener("click", walk);
$("seed2").addEventListener("keydown", (e) => { if (e.key === "Enter") walk(); });
$("slider").addEventListener("input", showFrame);

(async () => {
  try {
    const body = await api("/api/models", {});
    models = body.models;
    if (!models.length) { showError(body.error); document.querySelectorAll("button").forEach((b) => b.disabled = true); return; }
    models.forEach((m) => $("model").add(new Option(m.name + " (" + m.kind + ", " + m.image_shape.join("\\u00d7") + ")", m.name)));
    updateClasses();
    setSizes();
    await draw();
  } catch (e) { showError(e.message); }
})();
</script>
</body>
</html>
"""
