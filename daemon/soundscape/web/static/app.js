// The operator's page: state pushed by the daemon (Server-Sent Events), a preview a few
// times a second, and buttons that call the daemon's commands (the same path OSC uses).
"use strict";
const token = new URLSearchParams(location.search).get("token") || "";
const withToken = (url) => (token ? `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}` : url);
const $ = (id) => document.getElementById(id);
const text = (el, value) => { if (el.textContent !== value) el.textContent = value; };
let last = null;          // the last status pushed
let lastAt = 0;           // when it arrived (performance.now)

async function command(name, args = []) {
  const response = await fetch(withToken(`api/command/${name}`), {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ args }),
  });
  if (!response.ok) console.warn(name, await response.text());
}

document.querySelectorAll("button[data-command]").forEach((b) =>
  b.addEventListener("click", () => command(b.dataset.command)));

function list(el, items, render) {
  el.replaceChildren(...items.map((item) => {
    const li = document.createElement("li");
    render(li, item);
    return li;
  }));
}

function clock(t) {
  return new Date(t * 1000).toLocaleTimeString();
}

function render(s) {
  const session = s.session;
  const state = $("state");
  text(state, session.state + (session.reason ? `: ${session.reason}` : ""));
  state.className = `badge ${session.state}`;
  state.dataset.state = session.state;
  text($("fps"), `${session.fps.toFixed(1)} fps`);
  text($("reconnects"), `${session.reconnects} reconnects`);
  text($("loss"), session.last_loss ? `last loss ${clock(session.last_loss.at)}: ${session.last_loss.reason}` : "");

  const points = s.fps_history.map(([, fps], i) => `${i},${30 - Math.min(30, fps)}`).join(" ");
  $("fpsgraph").querySelector("polyline").setAttribute("points", points);

  const scenes = s.scene.scenes;
  text($("scene"), s.scene.current || "–");
  const box = $("scenes");
  if (box.dataset.names !== scenes.join("\n")) {
    box.dataset.names = scenes.join("\n");
    box.replaceChildren(...scenes.map((name) => {
      const b = document.createElement("button");
      b.textContent = name;
      b.dataset.scene = name;
      b.addEventListener("click", () => command("scene", [name]));
      return b;
    }));
  }
  box.querySelectorAll("button").forEach((b) => b.classList.toggle("current", b.dataset.scene === s.scene.current));

  text($("bpm"), s.tempo.bpm ? `${s.tempo.bpm.toFixed(1)} BPM` : "– BPM");
  text($("beatsource"), s.tempo.source ? `from ${s.tempo.source}` : "no beat source");

  const audio = s.inputs.audio;
  const levels = [];
  if (audio.enabled) {
    levels.push(["level", Math.max(0, Math.min(1, (audio.level_db + 60) / 60)), `${audio.level_db} dB`]);
    levels.push(["energy", audio.energy, audio.energy.toFixed(2)]);
    for (const [band, v] of Object.entries(audio.bands)) levels.push([band, v, v.toFixed(2)]);
  }
  $("audio").replaceChildren(...(levels.length ? levels.map(([name, v, label]) => {
    const row = document.createElement("div");
    row.className = "row";
    row.innerHTML = `<span></span><div class="bar"><span></span></div><span></span>`;
    row.children[0].textContent = name;
    row.children[1].firstChild.style.width = `${Math.round(v * 100)}%`;
    row.children[2].textContent = label;
    return row;
  }) : [Object.assign(document.createElement("span"), { className: "muted", textContent: "audio off" })]));

  list($("prompts"), s.prompts, (li, p) => {
    li.textContent = typeof p === "string" ? p : `${p.text}  ×${p.weight ?? 1}`;
  });
  list($("loras"), s.lora_scales, (li, l) => {
    li.textContent = `${l.path.split("/").pop()}: ${Number(l.scale).toFixed(2)}`;
  });

  const tbody = $("outputs").querySelector("tbody");
  const outputs = Object.entries(s.outputs);
  tbody.replaceChildren(...(outputs.length ? outputs.map(([label, o]) => {
    const tr = document.createElement("tr");
    for (const v of [label, o.state + (o.reason ? ` (${o.reason})` : ""), o.sent, o.dropped, o.held, o.errors]) {
      const td = document.createElement("td");
      td.textContent = v ?? "";
      tr.append(td);
    }
    return tr;
  }) : [Object.assign(document.createElement("tr"), { innerHTML: "<td colspan=6 class=muted>none: video goes nowhere</td>" })]));

  const inputs = [];
  const osc = s.inputs.osc;
  inputs.push(osc.enabled ? `OSC ${osc.health} ${osc.address || ""} — ${osc.counters.received} received` : "OSC off");
  const midi = s.inputs.midi;
  inputs.push(midi.enabled ? `MIDI ${midi.health}: ${midi.open.join(", ") || "no port open"}` : "MIDI off");
  inputs.push(audio.enabled ? `audio ${audio.health} (${audio.source})` : "audio off");
  if (s.inputs.video_in.enabled) inputs.push("video in (video mode)");
  list($("inputs"), inputs, (li, t) => { li.textContent = t; });

  list($("history"), s.history.slice(-12).reverse(), (li, h) => {
    li.textContent = `${clock(h.t)} ${h.state}${h.reason ? `: ${h.reason}` : ""}`;
  });
  list($("log"), s.log.slice().reverse(), (li, e) => {
    li.className = e.level;
    const fields = Object.entries(e.fields).map(([k, v]) => `${k}=${v}`).join(" ");
    li.textContent = `${(e.time || "").slice(11, 19)} ${e.level} ${e.event} ${fields}`;
  });
}

// The beat flashes on the page's own clock, corrected by every push (bpm and phase).
function flash() {
  const beat = $("beat");
  if (last && last.tempo.bpm) {
    const period = 60 / last.tempo.bpm;
    const elapsed = (performance.now() - lastAt) / 1000;
    const beats = last.tempo.phase + elapsed / period;
    const phase = beats - Math.floor(beats);
    const index = ((last.tempo.beat - 1 + Math.floor(beats)) % 4 + 4) % 4;
    beat.classList.toggle("on", phase < 0.2);
    beat.classList.toggle("downbeat", index === 0);
  } else {
    beat.classList.remove("on");
  }
  requestAnimationFrame(flash);
}
requestAnimationFrame(flash);

function connect() {
  const events = new EventSource(withToken("api/events"));
  events.onopen = () => text($("link"), "");
  events.onmessage = (message) => {
    last = JSON.parse(message.data);
    lastAt = performance.now();
    render(last);
  };
  events.onerror = () => {
    text($("link"), "daemon not answering — retrying");
    const state = $("state");
    state.className = "badge offline";
    state.dataset.state = "offline";
  };
}
connect();

// The preview: the next picture is asked for only when the last one has arrived.
let previewUrl = null;
async function preview() {
  const fps = (last && last.preview && last.preview.fps) || 4;
  try {
    const response = await fetch(withToken("api/preview.jpg"), { cache: "no-store" });
    if (response.status === 200) {
      const url = URL.createObjectURL(await response.blob());
      $("preview").src = url;
      if (previewUrl) URL.revokeObjectURL(previewUrl);
      previewUrl = url;
      $("preview").dataset.frames = String(Number($("preview").dataset.frames || 0) + 1);
    }
  } catch (err) { /* the daemon is away: the status says so */ }
  setTimeout(preview, 1000 / fps);
}
preview();

document.addEventListener("keydown", (e) => {
  if (e.target.tagName === "INPUT") return;
  if (e.key === "t") command("tap");
});
