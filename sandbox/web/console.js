// opsbot sandbox console. Everything shown comes from /console/api/state and is
// built with createElement and textContent: Block Kit text is untrusted, and no
// string from the server ever reaches innerHTML.
"use strict";

const POLL_MS = 1000;
const EMOJI = {
  red_circle: "🔴", large_green_circle: "🟢", large_orange_circle: "🟠", white_circle: "⚪",
  large_yellow_circle: "🟡", rotating_light: "🚨", white_check_mark: "✅", heavy_check_mark: "✔️",
  warning: "⚠️", x: "❌", rocket: "🚀", link: "🔗", hourglass_flowing_sand: "⏳", hourglass: "⌛",
  bell: "🔔", no_bell: "🔕", mute: "🔇", pager: "📟", lock: "🔒", unlock: "🔓", mag: "🔍",
  arrow_up: "⬆️", arrow_down: "⬇️", arrow_right: "➡️", leftwards_arrow_with_hook: "↩️",
  memo: "📝", fire: "🔥", package: "📦", information_source: "ℹ️", stopwatch: "⏱️",
  construction: "🚧", checkered_flag: "🏁", wave: "👋", eyes: "👀", sos: "🆘", zzz: "💤",
  triangular_flag_on_post: "🚩", gear: "⚙️", clipboard: "📋", busts_in_silhouette: "👥",
  bust_in_silhouette: "👤", calendar: "📆", telephone_receiver: "📞", arrows_counterclockwise: "🔄",
  repeat: "🔁", no_entry: "⛔", no_entry_sign: "🚫", thumbsup: "👍", "+1": "👍", tada: "🎉",
  green_heart: "💚", broken_heart: "💔", large_blue_circle: "🔵", speech_balloon: "💬",
};

const state = { data: null, text: "", channel: "C0PRODALERTS", user: "U0ALICE", busy: false };
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// -- mrkdwn ----------------------------------------------------------------------------

function unescapeSlack(text) {
  return text.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}

function safeHref(url) {
  return /^(https?:|mailto:)/i.test(url) ? url : null;
}

function nameOf(kind, id) {
  const names = (state.data && state.data.names) || { users: {}, groups: {} };
  if (kind === "user") return names.users[id] || id;
  if (kind === "group") return names.groups[id] || id;
  const channel = ((state.data && state.data.channels) || []).find((c) => c.id === id);
  return channel ? channel.name : id;
}

function angle(inner) {
  const [target, label] = inner.split("|", 2);
  if (target.startsWith("@")) return el("span", { class: "mention" }, "@" + (label || nameOf("user", target.slice(1))));
  if (target.startsWith("#")) return el("span", { class: "mention" }, "#" + (label || nameOf("channel", target.slice(1))));
  if (target.startsWith("!subteam^")) {
    const handle = label ? label.replace(/^@/, "") : nameOf("group", target.slice(9));
    return el("span", { class: "mention" }, "@" + handle);
  }
  if (target.startsWith("!date^")) return slackDate(target, label);
  if (target.startsWith("!")) return el("span", { class: "mention" }, "@" + (label || target.slice(1)));
  const href = safeHref(unescapeSlack(target));
  const text = unescapeSlack(label || target.replace(/^mailto:/, ""));
  if (!href) return document.createTextNode(text);
  return el("a", { href, target: "_blank", rel: "noopener noreferrer" }, text);
}

// `<!date^EPOCH^FORMAT|fallback>`: the reader's own time zone, as Slack shows it.
function slackDate(target, label) {
  const [, epoch, format] = target.split("^");
  const moment = new Date(Number(epoch) * 1000);
  if (!format || Number.isNaN(moment.getTime())) return document.createTextNode(unescapeSlack(label || ""));
  const day = (d) => d.toDateString();
  const today = new Date();
  const yesterday = new Date(today.getTime() - 86400000);
  const tomorrow = new Date(today.getTime() + 86400000);
  const pretty =
    day(moment) === day(today) ? "Today" :
    day(moment) === day(yesterday) ? "Yesterday" :
    day(moment) === day(tomorrow) ? "Tomorrow" :
    moment.toLocaleDateString(undefined, { month: "short", day: "numeric" });
  const clock = (secs) =>
    moment.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", ...(secs ? { second: "2-digit" } : {}) });
  const shown = format
    .replace("{date_short_pretty}", pretty)
    .replace("{date_short}", moment.toLocaleDateString(undefined, { month: "short", day: "numeric", year: "numeric" }))
    .replace("{time_secs}", clock(true))
    .replace("{time}", clock(false));
  return el("time", { datetime: moment.toISOString(), title: unescapeSlack(label || "") }, shown);
}

const TOKEN = /```([\s\S]+?)```|`([^`\n]+)`|<([^<>\n]+)>|\*([^*\n]+)\*|(?<![A-Za-z0-9])_([^_\n]+)_(?![A-Za-z0-9])|~([^~\n]+)~|:([a-z0-9_+-]+):/g;

function mrkdwn(text, plain) {
  const out = document.createDocumentFragment();
  if (plain) {
    // plain_text shows emoji codes as emoji (Slack's default `emoji: true`), nothing else.
    const shown = unescapeSlack(text).replace(/:([a-z0-9_+-]+):/g, (whole, name) => EMOJI[name] || whole);
    out.append(document.createTextNode(shown));
    return out;
  }
  let last = 0;
  for (const match of text.matchAll(TOKEN)) {
    if (match.index > last) out.append(document.createTextNode(unescapeSlack(text.slice(last, match.index))));
    const [whole, pre, code, link, bold, italic, strike, emoji] = match;
    if (pre !== undefined) out.append(el("pre", {}, unescapeSlack(pre)));
    else if (code !== undefined) out.append(el("code", {}, unescapeSlack(code)));
    else if (link !== undefined) out.append(angle(link));
    else if (bold !== undefined) out.append(el("strong", {}, mrkdwn(bold)));
    else if (italic !== undefined) out.append(el("em", {}, mrkdwn(italic)));
    else if (strike !== undefined) out.append(el("s", {}, mrkdwn(strike)));
    else if (emoji !== undefined) out.append(document.createTextNode(EMOJI[emoji] || whole));
    last = match.index + whole.length;
  }
  if (last < text.length) out.append(document.createTextNode(unescapeSlack(text.slice(last))));
  return out;
}

function textObject(obj) {
  if (!obj) return document.createDocumentFragment();
  if (typeof obj === "string") return mrkdwn(obj);
  return el("span", { class: "mrkdwn" }, mrkdwn(String(obj.text || ""), obj.type === "plain_text"));
}

// -- Block Kit ---------------------------------------------------------------------------

function element(item, where) {
  if (item.type === "button") {
    const label = (item.text && item.text.text) || item.action_id;
    const cls = item.style === "primary" ? "primary" : item.style === "danger" ? "danger" : "";
    const button = el("button", { type: "button", class: cls, "data-action-id": item.action_id }, label);
    button.addEventListener("click", () => {
      const href = item.url && safeHref(item.url);
      if (href) window.open(href, "_blank", "noopener");
      click(where, { action_id: item.action_id, value: item.value ?? null, block_id: where.block_id });
    });
    return button;
  }
  if (item.type === "static_select" || item.type === "overflow") {
    const placeholder = item.type === "overflow" ? "⋯" : (item.placeholder && item.placeholder.text) || "Choose…";
    const select = el("select", { "aria-label": placeholder, "data-action-id": item.action_id }, el("option", { value: "" }, placeholder));
    const groups = item.option_groups ? item.option_groups.flatMap((g) => g.options) : item.options || [];
    for (const option of groups) select.append(el("option", { value: option.value }, (option.text && option.text.text) || option.value));
    select.addEventListener("change", () => {
      if (!select.value) return;
      click(where, { action_id: item.action_id, value: null, selected_option: select.value, block_id: where.block_id });
    });
    return select;
  }
  if (item.type === "image") return el("span", { class: "muted" }, "[image: " + (item.alt_text || "") + "]");
  if (item.type === "mrkdwn" || item.type === "plain_text") return textObject(item);
  return el("span", { class: "block-unknown" }, "[" + item.type + "]");
}

function richText(block) {
  const parts = [];
  const walk = (node) => {
    if (node.text) parts.push(node.text);
    if (node.type === "user") parts.push("@" + nameOf("user", node.user_id));
    if (node.type === "channel") parts.push("#" + nameOf("channel", node.channel_id));
    if (node.type === "link") parts.push(node.url);
    for (const child of node.elements || []) walk(child);
  };
  walk(block);
  return el("div", { class: "mrkdwn" }, parts.join(""));
}

function blocks(list, where) {
  const out = document.createDocumentFragment();
  for (const block of list) {
    const at = { ...where, block_id: block.block_id || "b" };
    if (block.type === "header") out.append(el("h3", { class: "block-header" }, textObject(block.text)));
    else if (block.type === "section") {
      const body = el("div", { class: "body" });
      if (block.text) body.append(el("div", {}, textObject(block.text)));
      if (block.fields) body.append(el("div", { class: "fields" }, ...block.fields.map((f) => el("div", {}, textObject(f)))));
      out.append(el("div", { class: "block-section" }, body, block.accessory ? element(block.accessory, at) : null));
    } else if (block.type === "context") out.append(el("div", { class: "block-context" }, ...(block.elements || []).map((e) => element(e, at))));
    else if (block.type === "actions") out.append(el("div", { class: "block-actions" }, ...(block.elements || []).map((e) => element(e, at))));
    else if (block.type === "divider") out.append(el("hr"));
    else if (block.type === "image") out.append(el("p", { class: "muted" }, "[image: " + (block.alt_text || "") + "]"));
    else if (block.type === "rich_text") out.append(richText(block));
    else out.append(el("p", { class: "block-unknown" }, "[" + block.type + " block]"));
  }
  return out;
}

function messageBody(message, where) {
  if (message.blocks && message.blocks.length) return blocks(message.blocks, where);
  return el("div", { class: "mrkdwn" }, mrkdwn(message.text || ""));
}

function when(ts) {
  const seconds = Number(String(ts).split(".")[1] || 0);
  return "#" + seconds;
}

function messageItem(message, channel) {
  const who = nameOf("user", message.user);
  const item = el("li", { class: "message", "data-ts": message.ts },
    el("div", { class: "meta" }, el("span", { class: "who" }, who), " ", message.edited ? el("span", { class: "edited" }, "(edited)") : null),
    messageBody(message, { channel, message_ts: message.ts }));
  if (message.replies && message.replies.length) {
    const n = message.replies.length;
    item.append(el("div", { class: "thread", "aria-label": "Thread" },
      el("div", { class: "meta" }, n + (n === 1 ? " reply" : " replies")),
      el("ol", { class: "messages" }, ...message.replies.map((r) => messageItem(r, channel)))));
  }
  return item;
}

function ephemeralItem(message) {
  const to = nameOf("user", message.user);
  return el("li", { class: "message ephemeral", "data-ts": message.ts, "data-ephemeral": message.id },
    el("div", { class: "meta" }, el("span", { class: "who" }, message.source === "slack" ? "Slackbot" : "opsbot"),
      " · only visible to ", to, " ", message.updates ? el("span", { class: "edited" }, "(edited)") : null),
    messageBody(message, { channel: message.channel, ephemeral_id: message.id }));
}

// -- rendering --------------------------------------------------------------------------

function renderChannels() {
  const list = $("channels");
  list.replaceChildren(...state.data.channels.map((c) => {
    const count = c.messages.length;
    return el("li", {}, el("button", {
      type: "button", "data-channel": c.id, "aria-current": c.id === state.channel ? "true" : "false",
      onclick: () => { state.channel = c.id; render(true); },
    }, "# " + c.name, count ? el("span", { class: "count" }, count) : null));
  }));
}

function renderMessages(scrollToEnd) {
  const channel = state.data.channels.find((c) => c.id === state.channel) || state.data.channels[0];
  if (!channel) return;
  state.channel = channel.id;
  $("channel-name").textContent = "#" + channel.name;
  $("command-channel").textContent = "#" + channel.name;
  const list = $("messages");
  const atEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const items = [
    ...channel.messages.map((m) => ({ ts: m.ts, node: () => messageItem(m, channel.id) })),
    ...state.data.ephemerals.filter((e) => e.channel === channel.id).map((e) => ({ ts: e.ts, node: () => ephemeralItem(e) })),
  ].sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0));
  list.replaceChildren(...(items.length ? items.map((i) => i.node()) : [el("li", { class: "empty" }, "Nothing here yet.")]));
  if (atEnd || scrollToEnd) list.scrollTop = list.scrollHeight;
}

function renderIncidents() {
  const list = $("incidents");
  if (!state.data.incidents.length) {
    list.replaceChildren(el("li", { class: "muted" }, "No incidents. Fire a prod alarm."));
    return;
  }
  list.replaceChildren(...state.data.incidents.map((i) => {
    const open = i.status !== "resolved";
    return el("li", { "data-incident": i.id },
      el("div", {}, el("strong", {}, "#" + i.number), " ", el("span", { class: "status status-" + i.status }, i.status), " ", i.title),
      el("div", { class: "hint" }, i.service + " · " + i.urgency + " urgency · level " + i.escalation_level +
        (i.assignees.length ? " · assigned to " + i.assignees.join(", ") : "") +
        (i.acknowledged_by.length ? " · acknowledged by " + i.acknowledged_by.join(", ") : "") +
        (i.notes ? " · " + i.notes + " note(s)" : "")),
      open ? el("div", { class: "row" },
        i.status === "triggered" ? el("button", { type: "button", onclick: () => pagerduty(i.id, "acknowledged") }, "Acknowledge in PagerDuty") : null,
        el("button", { type: "button", onclick: () => pagerduty(i.id, "resolved") }, "Resolve in PagerDuty")) : null);
  }));
}

function renderServices() {
  $("services").replaceChildren(...state.data.services.map((s) => {
    if (s.error) return el("li", { class: "error" }, s.environment + ": " + s.error);
    const primary = s.deployments.find((d) => d.status === "PRIMARY") || {};
    return el("li", { "data-environment": s.environment },
      el("div", {}, el("strong", {}, s.app + "/" + s.environment), " ",
        el("span", { class: "status status-" + primary.rollout }, primary.rollout || "?"), " ",
        el("span", { class: "muted" }, s.running + "/" + s.desired + " running")),
      el("div", {}, "image ", el("code", {}, s.tags.length ? s.tags.join(", ") : "?"), " ",
        el("span", { class: "muted" }, s.digest.slice(0, 19))),
      el("div", { class: "hint" }, "task definition " + s.task_definition + " · cluster " + s.cluster + " · service " + s.service),
      s.deployments.length > 1 ? el("ul", { class: "hint" }, ...s.deployments.map((d) =>
        el("li", {}, d.status + " " + d.rollout + " " + d.task_definition + " (" + d.running + "/" + d.desired + " running" + (d.failed ? ", " + d.failed + " failed" : "") + ")"))) : null,
      s.events.length ? el("div", { class: "hint" }, s.events[0]) : null);
  }));
}

function renderActivity() {
  $("activity").replaceChildren(...state.data.activity.map((a) =>
    el("li", {}, el("span", { class: a.status && a.status >= 400 ? "bad" : "" },
      "[" + a.kind + "] " + a.user + ": " + a.summary + (a.status ? " → " + a.status : "") + (a.answer ? " · " + a.answer : "")))));
}

function renderUsers() {
  const select = $("user");
  if (select.options.length) return;
  for (const user of state.data.users) select.append(el("option", { value: user.id }, user.real_name + " (@" + user.name + ")"));
  select.value = state.user;
  const role = () => {
    const user = state.data.users.find((u) => u.id === select.value);
    $("user-role").textContent = user ? user.role : "";
  };
  select.addEventListener("change", () => { state.user = select.value; role(); });
  role();
  $("examples").replaceChildren(...state.data.examples.map((e) => el("option", { value: e })));
  $("example-chips").replaceChildren(...state.data.examples.map((e) =>
    el("button", { type: "button", onclick: () => { $("command").value = e; $("command").focus(); } }, e)));
  $("alarm-names").replaceChildren(...state.data.alarms.map((a) => el("option", { value: a.name }, a.about)));
  const about = () => {
    const alarm = state.data.alarms.find((a) => a.name === $("alarm-name").value);
    $("alarm-about").textContent = alarm ? alarm.about : "Any name: prod-* pages on-call, others post to #alerts.";
  };
  $("alarm-name").addEventListener("input", about);
  about();
}

function renderMetricsLink() {
  const link = $("metrics-link");
  const url = state.data.metrics_url;
  if (url && /^http:\/\/[0-9.]+:[0-9]+\/metrics$/.test(url)) {
    link.href = url;
    link.hidden = false;
  }
}

function render(scrollToEnd) {
  if (!state.data) return;
  renderMetricsLink();
  renderUsers();
  renderChannels();
  renderMessages(scrollToEnd);
  renderIncidents();
  renderServices();
  renderActivity();
}

// -- talking to the sandbox -------------------------------------------------------------

async function post(path, body) {
  const answer = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  let data = {};
  try { data = await answer.json(); } catch (e) { data = {}; }
  if (!answer.ok) throw new Error(data.error || "HTTP " + answer.status);
  return data;
}

async function act(label, path, body) {
  $("live").textContent = label + "…";
  try {
    await post(path, body);
    $("live").textContent = label + ": sent";
  } catch (error) {
    $("live").textContent = label + ": " + error.message;
  }
  poll();
}

function click(where, action) {
  if (where.home) return homeClick(action);  // a button of the App Home tab (console_home.js)
  act("click " + action.action_id, "/console/api/click", { user: state.user, channel: where.channel, message_ts: where.message_ts || null, ephemeral_id: where.ephemeral_id || null, ...action });
}

function pagerduty(incident, status) {
  act(status + " in PagerDuty", "/console/api/pagerduty", { incident_id: incident, status, user: state.user });
}

async function poll() {
  try {
    const answer = await fetch("/console/api/state", { cache: "no-store" });
    const text = await answer.text();
    if (!answer.ok) throw new Error("HTTP " + answer.status);
    if (text !== state.text) {
      const first = state.data === null;
      state.text = text;
      state.data = JSON.parse(text);
      render(first);
    }
    if ($("live").textContent === "connecting…" || $("live").textContent.startsWith("disconnected")) $("live").textContent = "live";
  } catch (error) {
    $("live").textContent = "disconnected (" + error.message + "), retrying";
  }
}

function start() {
  $("command-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("command").value.trim();
    if (!text) return;
    act(text.split(" ")[0], "/console/api/command", { user: state.user, channel: state.channel, text });
  });
  $("alarm-form").addEventListener("submit", (event) => {
    event.preventDefault();  // Enter in the name fires the alarm, it does not reload the page
    act("ALARM " + $("alarm-name").value, "/console/api/alarm", { name: $("alarm-name").value, state: "ALARM", count: 1 });
  });
  for (const button of document.querySelectorAll("#alarm-form button[data-state]")) {
    button.addEventListener("click", () => act(button.dataset.state + " " + $("alarm-name").value, "/console/api/alarm",
      { name: $("alarm-name").value, state: button.dataset.state, count: 1 }));
  }
  $("storm").addEventListener("click", () => act("storm", "/console/api/alarm",
    { name: $("alarm-name").value, state: "ALARM", count: Number($("storm-size").value) }));
  poll();
  setInterval(poll, POLL_MS);
}

document.addEventListener("DOMContentLoaded", start);
