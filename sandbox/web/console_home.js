// The console's App Home: open it as the person you act as, see the view opsbot
// published (views.publish to the Slack emulator), click its buttons as Slack would.
// Rendering reuses console.js's Block Kit functions (`blocks`, `el`, `$`, `state`).
"use strict";

const HOME_POLL_MS = 1500;

async function homePost(path, body) {
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

function homeClick(action) {
  homePost("/console/api/home/click", { user: state.user, action_id: action.action_id, value: action.value ?? null, block_id: action.block_id || "b" })
    .then(() => { $("home-status").textContent = "clicked " + action.action_id; })
    .catch((error) => { $("home-status").textContent = error.message; });
}

async function renderHome() {
  const box = $("home-view");
  if (!box || !state.user) return;
  try {
    const data = await homePost("/console/api/home/view", { user: state.user });
    const text = JSON.stringify(data.view);
    if (box.dataset.shown === state.user + text) return;
    box.dataset.shown = state.user + text;
    box.replaceChildren(data.view
      ? blocks(data.view.blocks || [], { home: true })
      : el("p", { class: "muted" }, "Not opened yet: opsbot publishes it when you open App Home."));
  } catch (error) {
    $("home-status").textContent = error.message;
  }
}

function startHome() {
  const open = $("home-open");
  if (!open) return;
  open.addEventListener("click", () => {
    $("home-status").textContent = "opening…";
    homePost("/console/api/home/open", { user: state.user })
      .then(() => { $("home-status").textContent = "app_home_opened sent"; renderHome(); })
      .catch((error) => { $("home-status").textContent = error.message; });
  });
  setInterval(renderHome, HOME_POLL_MS);
}

document.addEventListener("DOMContentLoaded", startHome);
