// The emulator dashboard's own script: live updates over server-sent events, filters and paging
// without reloads, and forms sent in the background. Without it the page still works (plain
// links and forms); with it nothing reloads. No libraries, no build step.
"use strict";

(function () {
  const page = document.body.dataset.page;
  const live = document.getElementById("live");
  const flash = document.getElementById("flash");
  let source = null;
  let flashTimer = null;

  // Bring `from` in line with `to` node by node, so unchanged elements (a button under the
  // pointer, a focused link) stay the same objects across updates.
  function morph(from, to) {
    for (const attr of Array.from(from.attributes)) {
      if (!to.hasAttribute(attr.name)) from.removeAttribute(attr.name);
    }
    for (const attr of Array.from(to.attributes)) {
      if (from.getAttribute(attr.name) !== attr.value) from.setAttribute(attr.name, attr.value);
    }
    const old = Array.from(from.childNodes);
    const now = Array.from(to.childNodes);
    now.forEach(function (node, i) {
      const was = old[i];
      if (!was) {
        from.appendChild(node);
      } else if (was.nodeType !== node.nodeType || was.nodeName !== node.nodeName) {
        from.replaceChild(node, was);
      } else if (was.nodeType === Node.ELEMENT_NODE) {
        morph(was, node);
      } else if (was.nodeValue !== node.nodeValue) {
        was.nodeValue = node.nodeValue;
      }
    });
    for (let i = now.length; i < old.length; i++) from.removeChild(old[i]);
  }

  function update(id, html) {
    const target = document.getElementById(id);
    if (!target || typeof html !== "string") return;
    const next = target.cloneNode(false);
    next.innerHTML = html;
    morph(target, next);
  }

  function fillList(id, values) {
    const list = document.getElementById(id);
    const json = JSON.stringify(values);
    if (!list || list.dataset.values === json) return;
    list.dataset.values = json;
    list.replaceChildren(...values.map(function (v) {
      const option = document.createElement("option");
      option.value = v;
      return option;
    }));
  }

  // The answer to an action, for six seconds; one that carries a link stays until clicked away,
  // so that it can be copied.
  function say(message, bad, link) {
    if (!flash) return;
    flash.textContent = link ? message.replace(link, "") : message;
    if (link) {
      const anchor = document.createElement("a");
      anchor.href = link;
      anchor.textContent = link;
      anchor.target = "_blank";
      anchor.rel = "noopener";
      flash.appendChild(anchor);
    }
    flash.className = "flash " + (bad ? "bad" : "ok");
    flash.hidden = false;
    clearTimeout(flashTimer);
    if (!link) flashTimer = setTimeout(function () { flash.hidden = true; }, 6000);
  }

  if (flash) {
    flash.addEventListener("click", function (event) {
      if (!event.target.closest("a")) flash.hidden = true;
    });
  }

  function connect(url) {
    if (source) source.close();
    source = new EventSource(url);
    source.addEventListener("open", function () {
      live.textContent = "live";
      live.className = "live on";
    });
    source.addEventListener("error", function () {
      live.textContent = "reconnecting…";
      live.className = "live off";
    });
    source.addEventListener("logout", function () {
      source.close();
      window.location.assign("/");
    });
    source.addEventListener("update", function (event) {
      const data = JSON.parse(event.data);
      if (data.error) {
        say(data.error, true);
        return;
      }
      Object.keys(data.html).forEach(function (id) { update(id, data.html[id]); });
      Object.keys(data.lists).forEach(function (id) { fillList(id, data.lists[id]); });
      live.dataset.updated = String(Date.now());
    });
  }

  // --- the main page: filters and paging change the stream, not the page -------------------------

  function query() {
    const form = document.getElementById("filters");
    const params = new URLSearchParams();
    new FormData(form).forEach(function (value, key) {
      if (value) params.set(key, String(value));
    });
    return params;
  }

  function follow(params) {
    const search = params.toString();
    history.replaceState(null, "", search ? "/?" + search : "/");
    connect("/dashboard/events" + (search ? "?" + search : ""));
  }

  function setFilters(values) {
    const form = document.getElementById("filters");
    Object.keys(values).forEach(function (name) {
      if (form.elements[name]) form.elements[name].value = values[name];
    });
    follow(query());
  }

  if (page === "index") {
    const form = document.getElementById("filters");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      follow(query());
    });
    form.addEventListener("change", function () { follow(query()); });
    document.addEventListener("click", function (event) {
      const link = event.target.closest("a");
      if (!link) return;
      if (link.dataset.page) {
        event.preventDefault();
        const params = query();
        params.set("page", link.dataset.page);
        follow(params);
      } else if (link.dataset.filterState !== undefined || link.dataset.filterStack !== undefined) {
        event.preventDefault();
        setFilters({
          state: link.dataset.filterState || "",
          queue: link.dataset.filterQueue || "",
          stack: link.dataset.filterStack || "",
          pipeline: "",
        });
      } else if (link.dataset.clear !== undefined) {
        event.preventDefault();
        setFilters({ state: "", queue: "", stack: "", pipeline: "" });
      }
    });
    const params = new URLSearchParams(window.location.search);
    connect("/dashboard/events" + (params.toString() ? "?" + params.toString() : ""));
  } else if (page === "job") {
    const job = document.getElementById("job").dataset.job;
    connect("/dashboard/jobs/" + encodeURIComponent(job) + "/events");
  }

  // --- actions: sent in the background, answered in the flash line ------------------------------

  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (!form.classList || !form.classList.contains("action")) return;
    event.preventDefault();
    const button = form.querySelector("button");
    if (button) button.disabled = true;
    fetch(form.action, {
      method: "POST",
      body: new URLSearchParams(new FormData(form)),
      headers: { "Accept": "application/json" },
      credentials: "same-origin",
    }).then(function (response) {
      return response.json().then(function (body) {
        say(body.message || response.statusText, !response.ok, response.ok ? body.link : null);
        if (response.status === 401) window.location.assign("/");
      });
    }).catch(function (error) {
      say("the emulator did not answer: " + error, true);
    }).finally(function () {
      if (button) button.disabled = false;
    });
  });
})();
