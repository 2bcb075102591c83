// The operator's page: state pushed by the daemon (Server-Sent Events), a preview a few
// times a second, and buttons that call the daemon's commands (the same path OSC uses).
"use strict";
const token = new URLSearchParams(location.search).get("token") || "";
const withToken = (url) => (token ? `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}` : url);
const $ = (id) => document.getElementById(id);
const text = (el, value) => { if (el.textContent !== value) el.textContent = value; };
let last = null;          // the last status pushed
let lastAt = 0;           // when it arrived (performance.now)

// screen: a further screen's own bus (its scene, pause, failover); none = the main screen.
async function command(name, args = [], screen = null) {
  const response = await fetch(withToken(`api/command/${name}`), {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(screen ? { args, screen } : { args }),
  });
  if (!response.ok) console.warn(name, await response.text());
}

document.querySelectorAll("button[data-command]").forEach((b) =>
  b.addEventListener("click", () => command(b.dataset.command)));
// Timed buttons act on the press: a click comes on the release, 80-130 ms later.
document.querySelectorAll("button[data-press]").forEach((b) =>
  b.addEventListener("pointerdown", () => command(b.dataset.press)));

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

function ago(seconds) {
  if (seconds < 60) return `${Math.max(0, Math.round(seconds))} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

// Children keyed by name, rebuilt only when the names change: a button must outlive the
// pushes (twice a second), or a click could fall between two of them.
function keyed(container, names, create) {
  const key = names.join("\n");
  if (container.dataset.names !== key) {
    container.dataset.names = key;
    container.replaceChildren(...names.map(create));
  }
  return [...container.children];
}

function stateBadge(el, state) {
  text(el, state);
  el.className = `badge small ${state}`;
  el.dataset.state = state;
}

// A screen's servers (with standbys): role, state and why, fps, and a button that puts
// that server's frames on the outputs (the failover command).
const SERVER_HEAD = "<thead><tr><th>server</th><th>state</th><th>fps</th><th>outputs</th></tr></thead><tbody></tbody>";

function serverTable(screenName) {
  const table = document.createElement("table");
  table.className = "servers";
  table.innerHTML = SERVER_HEAD;
  table.dataset.screen = screenName;
  return table;
}

function renderServers(table, screen, screenName) {
  const failover = screen.failover;
  const rows = keyed(table.tBodies[0], Object.keys(screen.servers), (name) => {
    const tr = document.createElement("tr");
    tr.dataset.server = name;
    tr.innerHTML = "<td><b></b><span class='muted role'></span></td><td><span></span><span class='muted reason'></span></td><td class=metric></td><td></td>";
    tr.cells[0].children[0].textContent = name;
    const button = document.createElement("button");
    button.dataset.failover = name;
    button.addEventListener("click", () => command("failover", [name], screenName));
    tr.cells[3].append(button);
    return tr;
  });
  for (const tr of rows) {
    const name = tr.dataset.server;
    const info = screen.servers[name];
    const watch = failover && failover.servers[name];
    const shown = name === screen.shown;
    tr.classList.toggle("shown", shown);
    const reconnects = info.reconnects ? ` · ${info.reconnects} reconnect${info.reconnects > 1 ? "s" : ""}` : "";
    text(tr.cells[0].children[1], info.role + (info.mode ? ` ${info.mode}` : "") + reconnects);
    stateBadge(tr.cells[1].children[0], info.state);
    text(tr.cells[1].children[1], info.reason || "");
    // The failover's own measure of the frames (the supervisor's fps is refreshed slowly).
    const fps = watch ? (watch.live ? 1000 / watch.interval_ms : 0) : info.fps;
    text(tr.cells[2], fps ? fps.toFixed(1) : "–");
    // A server without frames would only freeze the outputs (a warm one is woken).
    const ready = !watch || watch.live || watch.warm;
    const button = tr.cells[3].firstChild;
    text(button, shown ? "on the outputs" : `Show ${name}`);
    button.disabled = shown || !ready;
    button.classList.toggle("current", shown);
  }
}

function switchLine(s, failover) {
  const last = failover.last_switch;
  const parts = [last
    ? `last switch ${clock(last.at)} (${ago(s.time - last.at)} ago): ${last.from} → ${last.to}, ${last.reason}`
    : "no switch yet"];
  parts.push(`${failover.switches} switches`, `longest gap ${failover.longest_gap_ms} ms`);
  return parts.join(" · ");
}

function renderScreens(s) {
  const screens = s.screens || {};
  const names = Object.keys(screens);  // the main screen first
  const main = screens[names[0]];
  const failover = main ? main.failover : null;

  // With a standby: which server the outputs show, in the header, and the servers' block.
  const shown = $("shown");
  shown.hidden = !failover;
  $("failover").hidden = !failover;
  if (failover) {
    // By the config's role: a standby chosen by hand is preferred, but still a standby.
    const role = (main.servers[main.shown] || {}).role === "standby" ? "standby" : "primary";
    text(shown, `outputs: ${main.shown} (${role})`);
    shown.className = `badge on-${role}`;
    shown.dataset.server = main.shown;
    shown.dataset.role = role;
    renderServers($("failover").querySelector("table"), main, null);
    text($("lastswitch"), switchLine(s, failover));
  }

  // Further screens: a line each (its own standbys' buttons too).
  $("screens").hidden = names.length < 2;
  if (names.length < 2) return;
  const cards = keyed($("screens").querySelector(".list"), names, (name) => {
    const card = document.createElement("div");
    card.className = "screen";
    card.dataset.screen = name;
    card.innerHTML = "<b></b> <span></span> <span class=shown></span> · scene <span class=scene></span> <span class=muted></span>";
    card.children[0].textContent = name;
    if (name !== names[0] && screens[name].failover) {
      card.append(serverTable(name), Object.assign(document.createElement("p"), { className: "muted lastswitch" }));
    }
    return card;
  });
  for (const card of cards) {
    const name = card.dataset.screen;
    const screen = screens[name];
    const info = screen.servers[screen.shown] || {};
    stateBadge(card.children[1], info.state || "?");
    const standby = screen.failover && info.role === "standby";
    const shownEl = card.querySelector(".shown");
    text(shownEl, `shows ${screen.shown}${standby ? " (standby)" : ""}`);
    shownEl.classList.toggle("standby", Boolean(standby));
    text(card.querySelector(".scene"), screen.scene || "–");
    text(card.children[4], info.reason || "");
    const table = card.querySelector("table");
    if (table) {
      renderServers(table, screen, name);
      text(card.querySelector(".lastswitch"), switchLine(s, screen.failover));
    }
  }
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
  renderScreens(s);

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
  const held = [s.tempo.downbeat_held ? "the one held" : "",
    s.tempo.octave_bpm ? `octave held at ${s.tempo.octave_bpm}` : ""].filter(Boolean);
  text($("beatsource"), (s.tempo.source ? `from ${s.tempo.source}` : "no beat source") +
    (held.length ? ` · ${held.join(" · ")}` : ""));

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
  if (e.target.tagName === "INPUT" || e.repeat) return;  // a held key is one press
  if (e.key === "t") command("tap");
  if (e.key === "d") command("downbeat");
});
