"""The labelling page: one static HTML document (no build step, no external assets).

Every piece of row text is put in the page with `textContent` (generated text is hostile input;
nothing from a row ever reaches `innerHTML`). The judge score is not in the page until the row
is labelled: the server sends it only in the answer to the label.
"""

PAGE_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>synthfactory label</title>
<style>
  body { font: 15px/1.45 system-ui, sans-serif; margin: 0; background: #f6f6f4; color: #222; }
  header { background: #2d3b45; color: #fff; padding: 8px 16px; display: flex; gap: 16px; align-items: baseline; }
  header h1 { font-size: 16px; margin: 0; }
  #progress { margin-left: auto; font-variant-numeric: tabular-nums; }
  main { display: grid; grid-template-columns: 1fr 300px; gap: 16px; padding: 16px; max-width: 1300px; }
  section, aside { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 12px 16px; }
  h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .05em; color: #666; margin: 10px 0 4px; }
  .text { white-space: pre-wrap; overflow-wrap: anywhere; background: #fafafa; border-left: 3px solid #9ab;
          padding: 8px 10px; margin: 0 0 8px; }
  .turn { margin: 6px 0; }
  .turn .role { font-weight: 600; font-size: 12px; color: #567; }
  .pair { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
  dl.fields dt { font-weight: 600; margin-top: 6px; }
  dl.fields dd { margin: 0 0 0 12px; white-space: pre-wrap; overflow-wrap: anywhere; }
  #controls { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; margin-top: 12px; }
  button { font: inherit; padding: 6px 14px; border-radius: 4px; border: 1px solid #888; background: #fff;
           cursor: pointer; }
  button.good { border-color: #2a7; } button.bad { border-color: #c33; }
  kbd { font: 12px monospace; border: 1px solid #aaa; border-radius: 3px; padding: 0 4px; background: #eee; }
  #note { flex: 1; min-width: 200px; font: inherit; padding: 5px; }
  #reveal { min-height: 1.5em; margin-top: 10px; font-weight: 600; }
  #reveal.good { color: #1a6; } #reveal.bad { color: #b22; } #reveal.skip { color: #666; }
  #status { color: #666; font-size: 13px; }
  ul.rubric { padding-left: 18px; } ul.rubric li { margin-bottom: 4px; }
</style>
</head>
<body>
<header><h1>synthfactory label</h1><span id="dataset"></span><span id="progress"></span></header>
<main>
  <section>
    <div id="row"></div>
    <div id="controls">
      <button class="good" id="btn-good" type="button"><kbd>g</kbd> good</button>
      <button class="bad" id="btn-bad" type="button"><kbd>b</kbd> bad</button>
      <button id="btn-skip" type="button"><kbd>s</kbd> skip</button>
      <input id="note" type="text" maxlength="2000" placeholder="n: note (Enter keeps it for this row)">
    </div>
    <div id="reveal" aria-live="polite"></div>
    <div id="status"></div>
  </section>
  <aside>
    <h2>Rubric</h2>
    <div id="rubric"></div>
    <h2>Keys</h2>
    <div><kbd>g</kbd> good &middot; <kbd>b</kbd> bad &middot; <kbd>s</kbd> skip &middot; <kbd>n</kbd> note</div>
    <p id="hint">Label by the rubric. The judge's score is shown only after you label, so it does not sway you.</p>
  </aside>
</main>
<script>
"use strict";
let current = null, busy = false, keptNote = "";
const $ = (id) => document.getElementById(id);

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function block(parent, title, text) {
  parent.appendChild(el("h2", null, title));
  parent.appendChild(el("div", "text", text));
}

function renderRow(item) {
  const row = $("row");
  row.replaceChildren();
  if (!item) return;
  const d = item.display || {};
  if (d.kind === "chat") {
    row.appendChild(el("h2", null, "Conversation"));
    for (const turn of d.turns || []) {
      const t = el("div", "turn");
      t.appendChild(el("div", "role", turn.role));
      t.appendChild(el("div", "text", turn.content));
      row.appendChild(t);
    }
  } else if (d.kind === "preference") {
    block(row, "Prompt", d.prompt);
    const pair = el("div", "pair");
    const left = el("div"), right = el("div");
    block(left, "Chosen", d.chosen);
    block(right, "Rejected", d.rejected);
    pair.append(left, right);
    row.appendChild(pair);
  } else if (d.kind === "fields") {
    block(row, "Prompt", d.prompt);
    row.appendChild(el("h2", null, "Fields"));
    const dl = el("dl", "fields");
    for (const [name, value] of Object.entries(d.fields || {})) {
      dl.appendChild(el("dt", null, name));
      dl.appendChild(el("dd", null, value));
    }
    row.appendChild(dl);
  } else {
    block(row, "Prompt", d.prompt);
    block(row, "Response", d.response);
  }
}

function renderRubric(rubric) {
  const box = $("rubric");
  box.replaceChildren();
  if (!rubric || !rubric.length) { box.appendChild(el("p", null, "rubric not recorded")); return; }
  const ul = el("ul", "rubric");
  for (const c of rubric) {
    const li = el("li");
    li.appendChild(el("strong", null, c.name));
    li.appendChild(document.createTextNode(": " + c.description));
    ul.appendChild(li);
  }
  box.appendChild(ul);
}

function show(state) {
  current = state.next;
  $("progress").textContent = state.done + " of " + state.total + " labelled";
  keptNote = "";
  $("note").value = "";
  $("status").textContent = "";
  if (!current) {
    renderRow(null);
    $("row").appendChild(el("p", null, "Every sampled row is labelled. You can close this tab."));
    for (const id of ["btn-good", "btn-bad", "btn-skip", "note"]) $(id).disabled = true;
    return;
  }
  renderRow(current);
}

async function start() {
  const response = await fetch("/api/state");
  const state = await response.json();
  $("dataset").textContent = state.dataset + " v" + state.version + " \\u00b7 " + state.labeller;
  renderRubric(state.rubric);
  show(state);
}

async function send(label) {
  if (!current || busy) return;
  busy = true;
  const note = ($("note").value || keptNote).trim();
  try {
    const response = await fetch("/api/label", {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({row_id: current.row_id, label: label, note: note || null}),
    });
    const answer = await response.json();
    if (!response.ok) {
      $("status").textContent = "not saved: " + (answer.detail || response.status); busy = false; return;
    }
    const reveal = $("reveal");
    reveal.className = label;
    const score = answer.score === null ? "no judge score" : "judge score " + answer.score.toFixed(3);
    const at = answer.threshold === null ? "" : " (threshold " + answer.threshold.toFixed(3) + ")";
    reveal.textContent = "labelled " + label + " \\u00b7 " + score + at + " \\u00b7 " + answer.outcome;
    $("progress").textContent = answer.done + " of " + answer.total + " labelled";
    setTimeout(() => { reveal.textContent = ""; reveal.className = ""; show(answer); busy = false; }, 1200);
  } catch (err) {
    $("status").textContent = "not saved (is the server still running?): " + err;
    busy = false;
  }
}

$("btn-good").addEventListener("click", () => send("good"));
$("btn-bad").addEventListener("click", () => send("bad"));
$("btn-skip").addEventListener("click", () => send("skip"));
$("note").addEventListener("keydown", (event) => {
  if (event.key === "Enter" || event.key === "Escape") {
    event.preventDefault();
    if (event.key === "Enter") {
      keptNote = $("note").value;
      $("status").textContent = keptNote.trim() ? "note kept for this row" : "";
    }
    $("note").blur();
  }
});
document.addEventListener("keydown", (event) => {
  if (event.target === $("note") || event.ctrlKey || event.metaKey || event.altKey) return;
  const key = event.key.toLowerCase();
  if (key === "g") send("good");
  else if (key === "b") send("bad");
  else if (key === "s") send("skip");
  else if (key === "n") { event.preventDefault(); $("note").focus(); }
});
start();
</script>
</body>
</html>
"""
