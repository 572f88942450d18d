// The chestclip viewer: upload an X-ray, show what POST /api/predict answers.
// Text from the server (file names, reports) is only ever set with textContent.
"use strict";

const $ = (id) => document.getElementById(id);
let model = null;
let current = null;
let zonesPng = null; // the last result's zone outlines, shown while "Show zones" is ticked

// A server exposed beyond loopback needs its token: open the page's address with
// "#token=TOKEN" at its end. What follows '#' never reaches a server or its logs; the token is
// kept for this tab only and removed from the address bar.
const token = (() => {
  const given = new URLSearchParams(location.hash.slice(1)).get("token");
  if (given) {
    sessionStorage.setItem("chestclip-token", given);
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem("chestclip-token");
})();
const authorisation = () => (token ? { Authorization: `Bearer ${token}` } : {});

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function loadModel() {
  try {
    const response = await fetch("/api/model", { headers: authorisation() });
    const body = await response.json();
    if (!response.ok) throw new Error(body.detail || `HTTP ${response.status}`);
    model = body;
  } catch (error) {
    showError(`cannot load the model: ${error.message}`);
    return;
  }
  const heads = model.heads.map((h) => (h.needs_indication ? `${h.name} (with indication)` : h.name));
  $("run").textContent = `run: ${model.run} · ${model.image_size} px · heads: ${heads.join(", ")}`;
  for (const name of model.methods) {
    const option = document.createElement("option");
    option.value = name;
    option.textContent = name;
    option.selected = name === model.default_method;
    $("method").append(option);
  }
}

function choose(file) {
  current = file || null;
  $("chosen").textContent = current ? current.name : "";
  if (current) analyse();
}

async function analyse() {
  showError("");
  if (!current) {
    showError("choose an X-ray file first");
    return;
  }
  if (model && current.size > model.max_upload_bytes) {
    showError(`${current.name}: larger than the server's limit of ${model.max_upload_bytes} bytes`);
    return;
  }
  const form = new FormData();
  form.append("file", current, current.name);
  const indication = $("indication").value.trim();
  if (indication) form.append("indication", indication);
  if ($("method").value) form.append("method", $("method").value);
  if ($("allow-ood").checked) form.append("allow_ood", "true");
  $("analyse").disabled = true;
  $("status").textContent = `analysing ${current.name}…`;
  try {
    const response = await fetch("/api/predict", {
      method: "POST",
      body: form,
      headers: authorisation(),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.detail || `HTTP ${response.status}`);
    render(body);
    $("status").textContent = "";
  } catch (error) {
    $("status").textContent = "";
    showError(error.message);
  } finally {
    $("analyse").disabled = false;
  }
}

function showLayer(id, png) {
  $(id).hidden = !png;
  if (png) $(id).src = `data:image/png;base64,${png}`;
  else $(id).removeAttribute("src");
}

function showZones() {
  showLayer("zones-layer", $("show-zones").checked ? zonesPng : null);
}

// Why the run gives no decision (or flags the one it gives), and what the reader should know.
function showTrust(trust) {
  const banner = $("trust-banner");
  const reasons = trust.reasons.join("; ");
  if (trust.refused) {
    banner.textContent = `No decision: ${reasons}. Tick the box above to score it anyway.`;
  } else if (trust.flagged) {
    banner.textContent = `Flagged, scored anyway: ${reasons}.`;
  } else {
    banner.textContent = trust.notes.join("; ");
  }
  banner.className = trust.flagged ? "flagged" : "note";
  banner.hidden = !banner.textContent;
}

function render(result) {
  $("file-name").textContent = result.file;
  $("xray").src = `data:image/png;base64,${result.image_png}`;
  showLayer("heatmap", result.heatmap_png);
  zonesPng = result.zones_png;
  showZones();
  showTrust(result.trust);
  $("explained").textContent = result.heatmap_png
    ? `${result.method} heat map of the ${result.explained_head} head's P(diseased)`
    : "no heat map: no decision for this image";
  $("zones-source").textContent = result.zones
    ? `zones: ${result.zones === "anatomy" ? "placed on the lungs and heart found in this image"
      : "template fitted into the image (no plausible lungs found)"}`
    : result.heatmap_png ? "no zones: lateral view (zones are for frontal films)" : "";

  const heads = $("heads").tBodies[0];
  heads.replaceChildren();
  for (const [name, probability] of Object.entries(result.probabilities)) {
    const row = heads.insertRow();
    row.dataset.head = name;
    cell(row, name);
    const shown = cell(row, probability === null ? "—" : probability.toFixed(3), "probability");
    shown.dataset.probability = String(probability);
    const threshold = result.thresholds[name];
    cell(row, threshold === null ? "—" : threshold.toFixed(3));
    const decision = result.decisions[name];
    const missing = result.trust.refused ? "no decision" : "no threshold: run chestclip evaluate";
    cell(row, decision === null ? missing : decision, `decision ${decision || ""}`);
  }

  // every finding of the multi-label heads; the block stays hidden for a binary-only run
  const findings = $("findings").tBodies[0];
  findings.replaceChildren();
  const findingHeads = Object.entries(result.findings || {});
  $("findings-block").hidden = findingHeads.length === 0;
  for (const [head, entries] of findingHeads) {
    for (const [finding, found] of Object.entries(entries)) {
      const row = findings.insertRow();
      row.dataset.head = head;
      row.dataset.finding = finding;
      cell(row, head);
      cell(row, finding);
      cell(row, found.probability.toFixed(3), "probability");
      cell(row, found.threshold === null ? "—" : found.threshold.toFixed(3));
      const missing = "no threshold: run chestclip evaluate";
      cell(row, found.decision === null ? missing : found.decision, `decision ${found.decision || ""}`);
    }
  }

  const zones = $("zones").tBodies[0];
  zones.replaceChildren();
  // anatomical zones by share, largest first; what falls outside them last
  const rank = ([zone, share]) => (zone === "outside" ? -2 : share ?? -1);
  const ranked = Object.entries(result.zone_masses).sort((a, b) => rank(b) - rank(a));
  for (const [zone, share] of ranked) {
    const row = zones.insertRow();
    row.dataset.zone = zone;
    cell(row, zone.replace(/_/g, " "));
    cell(row, share === null ? "empty map" : `${(100 * share).toFixed(1)} %`);
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = `${share === null ? 0 : Math.round(100 * share)}%`;
    row.insertCell().append(bar);
  }

  const drafts = $("drafts");
  drafts.replaceChildren();
  for (const draft of result.drafts) {
    const item = document.createElement("li");
    const similarity = document.createElement("span");
    similarity.className = "similarity";
    similarity.textContent = `similarity ${draft.similarity.toFixed(2)}`;
    const text = document.createElement("span");
    text.textContent = ` ${draft.findings} ${draft.impression}`.trimEnd();
    item.append(similarity, text);
    drafts.append(item);
  }
  $("no-drafts").hidden = result.drafts.length > 0 || !model || model.retrieval_index;
  $("results").hidden = false;
  $("results").dataset.file = result.file;
}

function setOpacity() {
  const value = Number($("opacity").value);
  $("heatmap").style.opacity = String(value / 100);
  $("opacity-value").textContent = `${value} %`;
}

document.addEventListener("DOMContentLoaded", () => {
  loadModel();
  setOpacity();
  $("file").addEventListener("change", () => choose($("file").files[0]));
  $("form").addEventListener("submit", (event) => {
    event.preventDefault();
    analyse();
  });
  $("method").addEventListener("change", () => current && analyse());
  $("allow-ood").addEventListener("change", () => current && analyse());
  $("show-zones").addEventListener("change", showZones);
  $("opacity").addEventListener("input", setOpacity);
  const drop = $("drop");
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    choose(event.dataTransfer.files[0]);
  });
});
