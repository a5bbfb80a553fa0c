// opsbot sandbox console: the modals the bot opened in the emulated Slack, for the
// person the console acts as. Drawn with createElement and textContent only (view
// text is untrusted); answers are kept while the modal stays open, so polling never
// loses what was typed.
"use strict";

(() => {
  const POLL_MS = 700;
  const modal = { id: null, shown: "", answers: {}, options: {}, searches: 0, busy: false, polls: 0, drawn: 0 };
  const $ = (id) => document.getElementById(id);

  function node(tag, attrs, ...children) {
    const made = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") made.className = value;
      else if (key.startsWith("on")) made.addEventListener(key.slice(2), value);
      else made.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      made.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return made;
  }

  function user() {
    const select = $("user");
    return (select && select.value) || "U0ALICE";
  }

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

  function say(text) {
    const live = $("live");
    if (live) live.textContent = text;
  }

  function fillOptions(field) {
    // Looked up anew: a redraw may have replaced the list since the search left.
    const list = $("modal-" + field.block_id + "-options");
    const options = modal.options[field.block_id] || [];
    if (list) list.replaceChildren(...options.map((o) => node("option", { value: o.value }, o.label)));
  }

  async function search(view, field, input) {
    // Only the newest search fills the list: a focus's search may answer after the typing's.
    const asked = ++modal.searches;
    try {
      const data = await post("/console/api/modal/options", {
        view_id: view.id, user: user(), action_id: field.action_id, value: input.value, answers: modal.answers,
      });
      if (modal.id !== view.id || asked !== modal.searches) return;
      modal.options[field.block_id] = data.options;
      fillOptions(field);
    } catch (error) {
      say("options: " + error.message);
    }
  }

  function fieldInput(view, field) {
    const id = "modal-" + field.block_id;
    const value = modal.answers[field.block_id] ?? field.initial ?? "";
    modal.answers[field.block_id] = value || null;
    const remember = (event) => { modal.answers[field.block_id] = event.target.value || null; };
    if (field.type === "static_select") {
      const select = node("select", { id, onchange: remember },
        node("option", { value: "" }, field.placeholder || "Choose…"),
        ...field.options.map((o) => node("option", { value: o.value }, o.label)));
      select.value = value;
      return select;
    }
    if (field.type === "external_select") {
      const list = node("datalist", { id: id + "-options" },
        ...(modal.options[field.block_id] || []).map((o) => node("option", { value: o.value }, o.label)));
      const input = node("input", {
        id, list: list.id, value, placeholder: field.placeholder || "Type to search", autocomplete: "off",
        oninput: (event) => { remember(event); search(view, field, event.target); },
        onfocus: (event) => search(view, field, event.target),
      });
      return node("span", { class: "modal-search" }, input, list);
    }
    if (field.multiline) {
      const area = node("textarea", { id, rows: 3, placeholder: field.placeholder || null, oninput: remember });
      area.value = value;
      return area;
    }
    return node("input", { id, value, placeholder: field.placeholder || null, oninput: remember });
  }

  async function submit(view) {
    if (modal.busy) return;
    modal.busy = true;
    say("submitting " + view.title + "…");
    try {
      const data = await post("/console/api/modal/submit", { view_id: view.id, user: user(), answers: modal.answers });
      const errors = Object.keys(data.errors || {});
      say(errors.length ? view.title + ": see the form" : view.title + ": submitted");
    } catch (error) {
      say(view.title + ": " + error.message);
    } finally {
      modal.busy = false;
      poll();
    }
  }

  async function close(view) {
    try { await post("/console/api/modal/close", { view_id: view.id, user: user() }); } catch (e) { /* gone already */ }
    poll();
  }

  function draw(view) {
    const root = $("modal-root");
    if (!view) {
      root.replaceChildren();
      modal.id = null;
      modal.shown = "";
      modal.answers = {};
      modal.options = {};
      return;
    }
    if (view.id !== modal.id) { modal.answers = {}; modal.options = {}; }
    const shown = JSON.stringify(view);
    if (view.id === modal.id && shown === modal.shown) return;
    modal.id = view.id;
    modal.shown = shown;
    const fields = view.fields.map((field) => node("div", { class: "modal-field" + (field.error ? " has-error" : "") },
      node("label", { for: "modal-" + field.block_id }, field.label, field.optional ? node("span", { class: "muted" }, " (optional)") : null),
      fieldInput(view, field),
      field.hint ? node("p", { class: "hint" }, field.hint) : null,
      field.error ? node("p", { class: "modal-error", role: "alert" }, field.error) : null));
    const form = node("form", { class: "modal-body", onsubmit: (event) => { event.preventDefault(); submit(view); } },
      ...view.intro.map((text) => node("p", {}, text)),
      ...fields,
      node("div", { class: "modal-buttons" },
        node("button", { type: "button", onclick: () => close(view) }, view.close),
        node("button", { type: "submit", class: "primary" }, view.submit)));
    root.replaceChildren(node("div", { class: "modal-backdrop" },
      node("div", { class: "modal", role: "dialog", "aria-modal": "true", "aria-labelledby": "modal-title", "data-callback-id": view.callback_id },
        node("h2", { id: "modal-title" }, view.title), form)));
  }

  async function poll() {
    const number = ++modal.polls;
    try {
      const answer = await fetch("/console/api/modals?user=" + encodeURIComponent(user()), { cache: "no-store" });
      if (!answer.ok) return;
      const data = await answer.json();
      if (number < modal.drawn) return;  // a later poll was drawn already: this answer is older
      modal.drawn = number;
      draw(data.modals.length ? data.modals[data.modals.length - 1] : null);
    } catch (error) {
      /* the console's own poll reports the connection */
    }
  }

  document.addEventListener("DOMContentLoaded", () => { poll(); setInterval(poll, POLL_MS); });
})();
