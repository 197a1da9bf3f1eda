// jobyard dashboard: small enhancements over server-rendered pages. Every page works
// without this script; with it, lists and job pages follow server-sent events and
// re-read their live parts as HTML fragments rendered by the server.
"use strict";

(function () {
  const FRAGMENT = { "X-Fragment": "1" };
  document.documentElement.classList.add("js");

  // -- small helpers

  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach((el) => {
      const when = new Date(el.getAttribute("datetime"));
      if (!isNaN(when)) {
        el.textContent = when.toLocaleString(undefined, {
          year: "numeric", month: "short", day: "numeric",
          hour: "2-digit", minute: "2-digit", second: "2-digit",
        });
      }
    });
  }

  // Calls fn at most once per `ms`, never twice at the same time, and once more after a
  // run if asked during it: the last answer shown is always the newest one.
  function coalesce(fn, ms) {
    let state = "idle"; // idle | waiting | running | again
    async function run() {
      state = "running";
      try {
        await fn();
      } finally {
        if (state === "again") {
          state = "waiting";
          setTimeout(run, ms);
        } else {
          state = "idle";
        }
      }
    }
    return function () {
      if (state === "idle") {
        state = "waiting";
        setTimeout(run, ms);
      } else if (state === "running") {
        state = "again";
      }
    };
  }

  // One note per live region says when live updates are interrupted.
  function liveNote(region, text) {
    if (!region || !region.parentNode) return;
    let note = region.previousElementSibling;
    if (!note || !note.classList.contains("live-note")) {
      if (!text) return;
      note = document.createElement("p");
      note.className = "live-note";
      note.setAttribute("role", "status");
      region.parentNode.insertBefore(note, region);
    }
    note.textContent = text || "";
    note.classList.toggle("broken", Boolean(text));
    if (!text) note.remove();
  }

  async function fetchFragment(url) {
    const response = await fetch(url, { headers: FRAGMENT, credentials: "same-origin" });
    if (response.status === 401) {
      window.location.reload(); // the session ended: the page sends us to sign in
      throw new Error("signed out");
    }
    const text = await response.text();
    if (!response.ok) {
      const message = new DOMParser().parseFromString(text, "text/html").body.textContent;
      throw new Error(message.trim() || "the server answered " + response.status);
    }
    return text;
  }

  // Follows a stream of server-sent events. A hidden tab lets go of its connection
  // (browsers allow only a few per server) and, shown again, reconnects from the last
  // event it saw; `hello` handlers re-read the page's live parts on every connection.
  function follow(url, handlers, region) {
    let source = null;
    let lastId = null;
    let ended = false;
    function stop() {
      ended = true;
      close();
    }
    function close() {
      if (source) source.close();
      source = null;
    }
    function open() {
      const target = lastId ? url.replace(/([?&]after=)\d+/, "$1" + lastId) : url;
      source = new EventSource(target);
      source.onopen = () => liveNote(region, "");
      source.onerror = () => {
        if (!source) return;
        liveNote(region, source.readyState === EventSource.CLOSED
          ? "Live updates stopped; reload the page to resume."
          : "Live updates interrupted; reconnecting…");
      };
      for (const [name, handler] of Object.entries(handlers)) {
        source.addEventListener(name, (event) => {
          if (event.lastEventId) lastId = event.lastEventId;
          handler(JSON.parse(event.data || "{}"), stop);
        });
      }
    }
    document.addEventListener("visibilitychange", () => {
      if (document.hidden) close();
      else if (!source && !ended) open();
    });
    window.addEventListener("pagehide", close);
    open();
  }

  // -- forms

  function enhanceForms(root) {
    root.querySelectorAll("form[data-confirm]").forEach((form) => {
      form.addEventListener("submit", (event) => {
        if (!window.confirm(form.dataset.confirm)) event.preventDefault();
      });
    });
    root.querySelectorAll("form[method=post]").forEach((form) => {
      form.addEventListener("submit", (event) => {
        if (event.defaultPrevented) return;
        // Disabled after the form data is taken, so the clicked button still counts.
        setTimeout(() => form.querySelectorAll("button[type=submit]").forEach((b) => { b.disabled = true; }), 0);
      });
    });
    root.querySelectorAll("form[data-autosubmit] select").forEach((select) => {
      select.addEventListener("change", () => select.form.requestSubmit());
    });
    root.querySelectorAll("[data-copy]").forEach((button) => {
      button.addEventListener("click", async () => {
        const input = document.querySelector(button.dataset.copy);
        input.select();
        try {
          await navigator.clipboard.writeText(input.value);
          button.textContent = "Copied";
        } catch (err) {
          document.execCommand("copy");
          button.textContent = "Copied";
        }
      });
    });
  }

  function enhance(root) {
    localTimes(root);
    enhanceForms(root);
  }

  // A fieldset of radio buttons shows only the fields of the chosen kind (targets, timing).
  function targetPicker(fieldset) {
    const fields = fieldset.querySelectorAll(".target-field");
    function update() {
      const checked = fieldset.querySelector("input[type=radio]:checked");
      const kind = checked ? checked.value : "";
      fields.forEach((field) => {
        const shown = field.dataset.kind.split(" ").includes(kind);
        field.hidden = !shown;
        field.querySelectorAll("input, select").forEach((input) => { input.disabled = !shown; });
      });
    }
    fieldset.addEventListener("change", update);
    update();
  }

  // A task form shows only the parts of the chosen type.
  function typePicker(form) {
    const select = form.querySelector("select[name=type]");
    function update() {
      form.querySelectorAll("[data-for-types]").forEach((part) => {
        part.hidden = !part.dataset.forTypes.split(" ").includes(select.value);
      });
    }
    select.addEventListener("change", update);
    update();
  }

  // -- live lists (jobs, nodes, clusters): re-read the list when its kinds change

  function liveList(region) {
    const kinds = (region.dataset.kinds || "").split(",");
    const refresh = coalesce(async () => {
      const before = new Set([...region.querySelectorAll("[data-job-id]")].map((r) => r.dataset.jobId));
      try {
        region.innerHTML = await fetchFragment(region.dataset.src);
        liveNote(region, "");
      } catch (err) {
        liveNote(region, "Could not refresh: " + err.message);
        return;
      }
      if (before.size) {
        region.querySelectorAll("[data-job-id]").forEach((row) => {
          if (!before.has(row.dataset.jobId)) row.classList.add("fresh");
        });
      }
      enhance(region);
    }, 250);
    follow(region.dataset.stream, {
      change: (data) => {
        if ((data.kinds || []).some((k) => kinds.includes(k))) refresh();
      },
      inbox: () => {
        refreshUnread();
        if (kinds.includes("inbox")) refresh();
      },
    }, region);
  }

  // -- a job page: the live part, and each open node's output

  function jobPage(region) {
    const outputs = () => document.querySelectorAll("details[data-output]");
    const busy = new WeakMap();

    async function readOutput(pre) {
      if (busy.get(pre)) { busy.set(pre, "again"); return; }
      busy.set(pre, true);
      try {
        const offset = pre.dataset.length || "0";
        const response = await fetch(pre.dataset.src + "?offset=" + encodeURIComponent(offset), {
          headers: FRAGMENT, credentials: "same-origin",
        });
        if (response.ok) {
          const text = await response.text();
          const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
          // The server sends escaped HTML (ANSI colours as spans), never the raw output.
          if (response.headers.get("X-Output-Reset") === "1") pre.innerHTML = text;
          else if (text) pre.insertAdjacentHTML("beforeend", text);
          pre.dataset.length = response.headers.get("X-Output-Length") || pre.dataset.length;
          if (atBottom) pre.scrollTop = pre.scrollHeight;
        }
      } finally {
        const again = busy.get(pre) === "again";
        busy.delete(pre);
        if (again) readOutput(pre);
      }
    }

    function readNode(details, stream) {
      if (!details.open) return;
      details.querySelectorAll("pre[data-src]").forEach((pre) => {
        if (!stream || pre.dataset.streamName === stream) readOutput(pre);
      });
    }

    outputs().forEach((details) => details.addEventListener("toggle", () => readNode(details)));

    const refresh = coalesce(async () => {
      try {
        region.innerHTML = await fetchFragment(window.location.pathname);
        enhance(region);
      } catch (err) {
        liveNote(region, "Could not refresh: " + err.message);
      }
    }, 200);

    if (!region.dataset.stream) return;
    follow(region.dataset.stream, {
      hello: () => { refresh(); outputs().forEach((d) => readNode(d)); },
      change: refresh,
      inbox: () => refreshUnread(),
      output: (data) => {
        outputs().forEach((d) => { if (d.dataset.output === data.node) readNode(d, data.stream); });
      },
      end: (data, stop) => {
        stop();
        const section = document.getElementById("outputs");
        if (section) section.classList.add("done");
        refresh();
        outputs().forEach((d) => readNode(d));
      },
    }, region);
  }

  // -- the unread count in the header, re-read when a live stream says the inbox changed

  const refreshUnread = coalesce(async () => {
    const badge = document.querySelector("[data-unread]");
    if (!badge) return;
    const response = await fetch("/notifications/count", { credentials: "same-origin" });
    if (!response.ok) return;
    const count = parseInt(await response.text(), 10) || 0;
    badge.querySelector("[data-unread-count]").textContent = count ? String(count) : "";
    badge.classList.toggle("has-unread", count > 0);
  }, 100);

  document.addEventListener("DOMContentLoaded", () => {
    enhance(document);
    document.querySelectorAll("[data-target-picker]").forEach(targetPicker);
    document.querySelectorAll("form[data-type-picker]").forEach(typePicker);
    document.querySelectorAll("[data-live-list][data-stream]").forEach(liveList);
    document.querySelectorAll("[data-job-live]").forEach(jobPage);
    // A page without a live part still follows the inbox for the header's count.
    const badge = document.querySelector("[data-unread]");
    if (badge && !document.querySelector("[data-stream]")) {
      follow("/live/org", { inbox: () => refreshUnread() }, badge);
    }
  });
})();
