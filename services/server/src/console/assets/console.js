// Rampart console: small progressive enhancements. Every page works
// without this script; nothing here builds markup from data.
"use strict";

// Times in the browser's zone: <time datetime="...">UTC text</time>.
function localTimes(root) {
  for (const t of root.querySelectorAll("time[datetime]")) {
    const when = new Date(t.getAttribute("datetime"));
    if (!isNaN(when)) {
      t.title = t.textContent;
      t.textContent = when.toLocaleString();
    }
  }
}

// The instance menu: a button that opens and closes its list, Escape closes.
function menus() {
  for (const button of document.querySelectorAll("[data-menu]")) {
    const menu = document.getElementById(button.getAttribute("aria-controls"));
    if (!menu) continue;
    const set = (open) => {
      button.setAttribute("aria-expanded", String(open));
      menu.hidden = !open;
      if (open) {
        const first = menu.querySelector("a, button");
        if (first) first.focus();
      }
    };
    set(false);
    button.addEventListener("click", () => set(menu.hidden));
    menu.addEventListener("keydown", (e) => {
      if (e.key === "Escape") { set(false); button.focus(); }
    });
  }
}

// The tree: arrow keys move between items, Right/Left open and close a
// branch, Enter follows the item's link.
function tree() {
  const root = document.querySelector("[role=tree]");
  if (!root) return;
  const visible = () => [...root.querySelectorAll("[role=treeitem]")].filter((i) => i.offsetParent !== null);
  root.addEventListener("keydown", (e) => {
    const items = visible();
    const current = e.target.closest("[role=treeitem]");
    const at = items.indexOf(current);
    if (at < 0) return;
    const details = current.querySelector(":scope > details");
    if (e.key === "ArrowDown" && at + 1 < items.length) { items[at + 1].focus(); e.preventDefault(); }
    else if (e.key === "ArrowUp" && at > 0) { items[at - 1].focus(); e.preventDefault(); }
    else if (e.key === "ArrowRight" && details) { details.open = true; e.preventDefault(); }
    else if (e.key === "ArrowLeft" && details) { details.open = false; e.preventDefault(); }
    else if (e.key === "Enter" && e.target === current) {
      const link = current.querySelector("a");
      if (link) { link.click(); e.preventDefault(); }
    }
  });
}

// The tree's children load when a node is opened, and a page of computers
// at a time ("Next 50"): the server answers a <ul data-fragment>.
async function fragment(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error("the server answered " + response.status);
  const page = new DOMParser().parseFromString(await response.text(), "text/html");
  const list = page.querySelector("ul[data-fragment]");
  return list ? [...list.children].map((item) => document.adoptNode(item)) : [];
}

function enhanceTree(root) {
  for (const details of root.querySelectorAll("details[data-children]")) {
    const item = details.closest("[role=treeitem]");
    details.addEventListener("toggle", async () => {
      if (item) item.setAttribute("aria-expanded", String(details.open));
      if (!details.open || details.dataset.loaded) return;
      details.dataset.loaded = "1";
      const slot = details.querySelector(":scope > ul[data-slot]");
      if (!slot) return;
      try {
        const items = await fragment(details.getAttribute("data-children"));
        slot.replaceChildren(...items);
        enhanceTree(slot);
      } catch (error) {
        slot.replaceChildren();
        const li = document.createElement("li");
        li.className = "error";
        li.textContent = "Could not load: " + error.message;
        slot.append(li);
      }
    });
  }
  for (const link of root.querySelectorAll("a[data-more]")) {
    link.addEventListener("click", async (event) => {
      event.preventDefault();
      const item = link.closest("li");
      const list = item.parentElement;
      const items = await fragment(link.getAttribute("data-more"));
      item.replaceWith(...items);
      enhanceTree(list);
    });
  }
}

// Forms that change something important ask first.
function confirms(root) {
  for (const form of root.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (e) => {
      if (!window.confirm(form.getAttribute("data-confirm"))) e.preventDefault();
    });
  }
}

// Parts of a page that keep themselves current: an element with an id and
// data-refresh="SECONDS" is replaced by the same element of a fresh copy
// of the page (not while the operator is using it). These requests say so
// (X-Rampart-Refresh), so they do not keep an idle session alive.
function refreshers() {
  for (const part of document.querySelectorAll("[data-refresh][id]")) {
    const seconds = Math.max(2, Number(part.getAttribute("data-refresh")) || 5);
    setInterval(async () => {
      const current = document.getElementById(part.id);
      if (document.hidden || !current || current.contains(document.activeElement)) return;
      const response = await fetch(location.href, { headers: { "X-Rampart-Refresh": "1" } });
      if (!response.ok || response.redirected) return;
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = page.getElementById(part.id);
      if (!fresh) return;
      const adopted = document.adoptNode(fresh);
      current.replaceWith(adopted);
      localTimes(adopted);
      confirms(adopted);
    }, seconds * 1000);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes(document);
  menus();
  tree();
  enhanceTree(document);
  confirms(document);
  refreshers();
});
