// gan-recipes explore: the controls talk to the server's /api/* (see gan_infogan_plugin/explore.py).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { runs: [], run: null, seed: "0", values: {}, maxSeed: 0 };
const urls = { image: null, strips: {} };  // object URLs in use, revoked when replaced

function query() {
  const parts = [`run=${state.run.id}`, `seed=${encodeURIComponent(state.seed)}`];
  for (const code of state.run.codes) parts.push(`${code.name}=${encodeURIComponent(state.values[code.name])}`);
  return parts.join("&");
}

function showStatus(text, isError) {
  $("status").textContent = text;
  $("status").classList.toggle("error", Boolean(isError));
}

// GET a PNG as an object URL; a refused request shows the server's one-line reason and gives null.
async function fetchImage(path) {
  const response = await fetch(path);
  if (!response.ok) {
    showStatus((await response.text()).trim() || `${response.status} ${response.statusText}`, true);
    return null;
  }
  return URL.createObjectURL(await response.blob());
}

// The main image: one request at a time; moves made meanwhile are folded into the next one.
let imageBusy = false;
let imageAgain = false;
async function updateImage() {
  if (imageBusy) { imageAgain = true; return; }
  imageBusy = true;
  try {
    do {
      imageAgain = false;
      const q = query();
      const started = performance.now();
      const url = await fetchImage(`/api/image?${q}`);
      if (url === null) continue;
      const img = $("image");
      await new Promise((resolve) => { img.onload = resolve; img.onerror = resolve; img.src = url; });
      if (urls.image) URL.revokeObjectURL(urls.image);
      urls.image = url;
      img.dataset.query = q;
      history.replaceState(null, "", `#${q}`);  // the address keeps the setting: reload or share it
      const ms = Math.round(performance.now() - started);
      const codes = state.run.codes.map((c) => `${c.name}=${state.values[c.name]}`).join(" ");
      showStatus(`seed ${state.seed}  ${codes}  ·  ${ms} ms`, false);
      $("download-image").href = `/api/image?${q}&scale=8&download=1`;
      $("download-grid").href = `/api/grid?${q}&scale=2&download=1`;
    } while (imageAgain);
  } catch (error) {
    showStatus(`no connection to the server (${error.message}); is gan-recipes explore still running?`, true);
  } finally {
    imageBusy = false;
  }
}

// A strip per code: the code's traversal for this noise and the other codes, cut into cells.
async function updateStrips(except) {
  const run = state.run;
  const q = query();
  await Promise.all(run.codes.filter((c) => c.name !== except).map(async (code) => {
    const url = await fetchImage(`/api/strip?${q}&code=${code.name}`);
    if (url === null || state.run !== run) return;
    if (urls.strips[code.name]) URL.revokeObjectURL(urls.strips[code.name]);
    urls.strips[code.name] = url;
    for (const cell of document.querySelectorAll(`.cell[data-code="${code.name}"]`)) {
      cell.style.backgroundImage = `url(${url})`;
    }
  }));
  document.body.dataset.ready = "1";
}

function markChosen(code) {
  const value = Number(state.values[code.name]);
  const cells = document.querySelectorAll(`.cell[data-code="${code.name}"]`);
  let nearest = null;
  for (const cell of cells) {
    if (nearest === null || Math.abs(cell.dataset.value - value) < Math.abs(nearest.dataset.value - value)) nearest = cell;
  }
  for (const cell of cells) {
    cell.classList.toggle("chosen", cell === nearest);
    if (code.kind === "cat") cell.setAttribute("aria-pressed", String(cell === nearest));
  }
}

function setValue(code, value) {
  state.values[code.name] = value;
  const out = document.querySelector(`output[data-code="${code.name}"]`);
  if (out) out.value = code.kind === "cat" ? `class ${value}` : Number(value).toFixed(2);
  const slider = document.querySelector(`input[data-code="${code.name}"]`);
  if (slider && slider.value !== String(value)) slider.value = value;
  markChosen(code);
  updateImage();
}

function buildCode(code, run, cellScale) {
  const box = document.createElement("div");
  box.className = "code";
  const title = document.createElement("h2");
  const kind = code.kind === "cat" ? `${code.classes} classes` : `continuous, ${code.prior} prior`;
  const name = document.createElement("span");
  name.textContent = code.name;
  const note = document.createElement("span");
  note.className = "kind";
  note.textContent = kind;
  title.append(name, note);
  const out = document.createElement("output");
  out.dataset.code = code.name;
  title.append(out);
  box.append(title);
  const values = code.kind === "cat" ? [...Array(code.classes).keys()] : code.values;
  if (code.kind === "cont") {
    const slider = document.createElement("input");
    Object.assign(slider, { type: "range", min: code.range[0], max: code.range[1], step: 0.01, value: 0 });
    slider.dataset.code = code.name;
    slider.setAttribute("aria-label", `code ${code.name}`);
    slider.addEventListener("input", () => setValue(code, slider.value));
    slider.addEventListener("change", () => updateStrips(code.name));
    box.append(slider);
  }
  const strip = document.createElement("div");
  strip.className = "strip";
  const w = run.width * cellScale;
  const h = run.height * cellScale;
  values.forEach((value, i) => {
    const cell = document.createElement("button");
    cell.type = "button";
    cell.className = "cell";
    cell.dataset.code = code.name;
    cell.dataset.value = value;
    cell.title = `${code.name} = ${code.kind === "cat" ? value : value.toFixed(2)}`;
    Object.assign(cell.style, { width: `${w + 4}px`, height: `${h + 4}px`,  // 2px border each side
      backgroundSize: `${w * values.length}px ${h}px`, backgroundPosition: `${-i * w}px 0` });
    if (code.kind === "cat") {
      const label = document.createElement("span");
      label.textContent = value;
      cell.append(label);
    }
    cell.addEventListener("click", () => {
      setValue(code, code.kind === "cat" ? value : value.toFixed(2));
      updateStrips(code.name);
    });
    strip.append(cell);
  });
  box.append(strip);
  return box;
}

// A setting from the address (#run=0&seed=5&c1=3&c2=0.5), else class 0 and value 0.
function selectRun(index, wanted = new URLSearchParams()) {
  const run = state.runs[index];
  state.run = run;
  state.values = {};
  for (const code of run.codes) {
    state.values[code.name] = wanted.get(code.name) ?? (code.kind === "cat" ? 0 : "0.00");
  }
  $("run-info").textContent = `${run.name}: ${run.model} nets, ${run.width}x${run.height}, step ${run.step}, codes ${run.spec}`;
  const scale = Math.max(1, Math.floor(256 / run.width));
  Object.assign($("image").style, { width: `${run.width * scale}px`, height: `${run.height * scale}px` });
  const cellScale = 56 / run.width;  // cells 56 pixels wide: ten classes fit beside the image
  const codes = $("codes");
  codes.replaceChildren(...run.codes.map((code) => buildCode(code, run, cellScale)));
  for (const code of run.codes) setValue(code, state.values[code.name]);
  if (run.codes.length === 0) updateImage();
  updateStrips(null);
}

function setSeed(seed) {
  state.seed = String(seed).trim();
  $("seed").value = state.seed;
  updateImage();
  updateStrips(null);
}

async function start() {
  let info;
  try {
    info = await (await fetch("/api/runs")).json();
  } catch (error) {
    showStatus(`cannot read the runs from the server (${error.message})`, true);
    return;
  }
  state.runs = info.runs;
  state.maxSeed = info.max_seed;
  const select = $("run");
  for (const run of info.runs) select.add(new Option(`${run.name} (step ${run.step})`, run.id));
  $("run-choice").hidden = info.runs.length < 2;
  select.addEventListener("change", () => selectRun(Number(select.value)));
  const wanted = new URLSearchParams(location.hash.slice(1));
  const index = Number(wanted.get("run") ?? 0);
  state.seed = wanted.get("seed") ?? "0";
  $("seed").value = state.seed;
  $("seed").max = info.max_seed;
  $("seed").addEventListener("change", () => setSeed($("seed").value));
  $("reroll").addEventListener("click", () => {
    const draw = new Uint32Array(1);
    crypto.getRandomValues(draw);
    setSeed(draw[0] % (state.maxSeed + 1));
  });
  const known = Number.isInteger(index) && index >= 0 && index < info.runs.length;
  select.value = known ? index : 0;
  selectRun(known ? index : 0, known ? wanted : undefined);
}

start();
