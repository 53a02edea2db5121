// pipelinejobs dashboard: plain JavaScript, no build step, no library, served by the API itself.
//
// Rules this file keeps (job data, names, tags and history are hostile input):
// - every value from the API is put on the page as text (`append(string)`, `textContent`), never as
//   markup: no innerHTML, no insertAdjacentHTML, no document.write anywhere;
// - links are built only for http(s) URLs (download links) and this page's own #routes;
// - the credential lives in sessionStorage (this tab, until it closes) and travels only in the
//   Authorization header: never in a URL, never in the page's address.
"use strict";

(() => {
  const STATES = [
    "CREATED", "RUNNING", "FAILED", "FINISHED", "INDEXING", "VALIDATING", "VALIDATED", "REJECTED",
    "FINALIZED", "RETIRED", "RESET", "CANCELED",
  ];
  // Events that carry no data a person types, and those that need a confirmation.
  const CONFIRM = {
    reset: {
      title: "Reset this job?",
      text: "Every object under its archive path is erased, every job and callback token is revoked, " +
        "and the job starts again in CREATED with the next generation.",
      option: "Keep the archive (erase nothing)",
      data: (checked) => ({ keep_archive: checked }),
      button: "Reset",
    },
    delete: {
      title: "Delete this job?",
      text: "The job leaves every listing and lookup; its history stays readable by an admin. " +
        "Its archive is kept unless you tick the box.",
      option: "Also erase its archive (purge)",
      data: (checked) => ({ purge_archive: checked }),
      button: "Delete",
    },
  };
  const NO_DATA = new Set(["reset", "delete", "ready"]);
  const STORE = "pipelinejobs.credential";
  const LIVE = "pipelinejobs.live";
  const REFRESH_MS = 5000;
  const PAGE = 25;
  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
  const ADMIN_TOKEN = /^[0-9a-f]{64}$/;
  const PRODUCER_KEY = /^pjk_([A-Za-z0-9_-]{12})_[A-Za-z0-9_-]{20,}$/;
  const base = new URL(".", location.href);
  const main = document.getElementById("main");

  // -- small helpers ------------------------------------------------------------------------------

  /** An element; children that are not nodes become text nodes (never markup). */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") el.className = value;
      else if (name === "on") for (const [ev, fn] of Object.entries(value)) el.addEventListener(ev, fn);
      else if (name === "href") el.setAttribute("href", safeHref(value));
      else if (name === "value") el.value = value;
      else if (name === "checked") el.checked = Boolean(value);
      else el.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : String(child));
    }
    return el;
  }

  function safeHref(value) {
    const text = String(value);
    if (text.startsWith("#/")) return text;
    try {
      const url = new URL(text, base);
      if (url.protocol === "http:" || url.protocol === "https:") return url.href;
    } catch (_) { /* not a URL */ }
    return "#";
  }

  function show(...nodes) {
    main.replaceChildren(...nodes.flat());
  }

  function toast(text, bad) {
    const el = document.getElementById("toast");
    el.textContent = text;
    el.classList.toggle("bad", Boolean(bad));
    el.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { el.hidden = true; }, bad ? 9000 : 5000);
  }

  function stateBadge(state) {
    const badge = h("span", { class: "state", "data-state": state }, state || "?");
    if (STATES.includes(state)) badge.style.background = `var(--s-${state})`;
    return badge;
  }

  function when(iso) {
    if (!iso) return "–";
    return String(iso).replace("T", " ").replace(/\.\d+Z$/, "Z");
  }

  function ago(iso) {
    const then = Date.parse(iso);
    if (Number.isNaN(then)) return "–";
    const seconds = Math.max(0, (Date.now() - then) / 1000);
    if (seconds < 60) return `${Math.round(seconds)} s ago`;
    if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
    return `${Math.round(seconds / 86400)} d ago`;
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
    const m = Math.floor(seconds / 60);
    if (m < 60) return `${m}m ${Math.round(seconds % 60)}s`;
    const hours = Math.floor(m / 60);
    if (hours < 48) return `${hours}h ${m % 60}m`;
    return `${Math.floor(hours / 24)}d ${hours % 24}h`;
  }

  function bytes(n) {
    if (n < 1024) return `${n} B`;
    const units = ["KiB", "MiB", "GiB", "TiB"];
    let value = n;
    let unit = -1;
    do { value /= 1024; unit += 1; } while (value >= 1024 && unit < units.length - 1);
    return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
  }

  function json(value) {
    return JSON.stringify(value, null, 2);
  }

  // -- the credential -----------------------------------------------------------------------------

  function credential() {
    return sessionStorage.getItem(STORE);
  }

  function kind(token) {
    if (ADMIN_TOKEN.test(token)) return "admin";
    if (PRODUCER_KEY.test(token)) return "key";
    return null;
  }

  function isAdmin() {
    return kind(credential() || "") === "admin";
  }

  let signInMessage = "";

  function signOut(message) {
    sessionStorage.removeItem(STORE);
    signInMessage = message || "";
    render();
  }

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  /** One request to the API; the credential in the Authorization header only. Raises ApiError. */
  async function api(method, path, { query, body, headers, token } = {}) {
    const url = new URL(path, base);
    for (const [name, value] of Object.entries(query || {})) {
      if (value !== null && value !== undefined && value !== "") url.searchParams.set(name, value);
    }
    const init = {
      method,
      headers: { Authorization: `Bearer ${token || credential()}`, ...headers },
      cache: "no-store",
      referrerPolicy: "no-referrer",
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch (_) {
      throw new ApiError(0, "unreachable", "The API does not answer: is the stack running?");
    }
    let data = null;
    try { data = await response.json(); } catch (_) { /* no JSON body */ }
    if (!response.ok) {
      const error = (data && data.error) || {};
      const failure = new ApiError(response.status, error.code, error.message || `HTTP ${response.status}`);
      if (response.status === 401 && !token) {
        signOut(`Signed out: ${failure.message}. Sign in again with a fresh credential.`);
      }
      throw failure;
    }
    return data;
  }

  function confirmDialog({ title, text, option, button }) {
    const dialog = document.getElementById("confirm");
    document.getElementById("confirm-title").textContent = title;
    document.getElementById("confirm-text").textContent = text;
    document.getElementById("confirm-ok").textContent = button || "Confirm";
    document.getElementById("confirm-option").hidden = !option;
    document.getElementById("confirm-option-text").textContent = option || "";
    const check = document.getElementById("confirm-check");
    check.checked = false;
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => {
        resolve(dialog.returnValue === "ok" ? { checked: check.checked } : null);
      }, { once: true });
      dialog.returnValue = "";
      dialog.showModal();
      document.getElementById("confirm-cancel").focus();
    });
  }

  function secretBox(label, value) {
    const input = h("input", { type: "text", readonly: true, value, "aria-label": label, class: "secret-value" });
    const copy = h("button", {
      type: "button",
      on: {
        click: async () => {
          input.select();
          try { await navigator.clipboard.writeText(value); toast(`${label} copied`); } catch (_) {
            toast("Select the text and copy it (the browser refused the clipboard)");
          }
        },
      },
    }, "Copy");
    return h("div", { class: "secret" }, h("span", { class: "muted" }, label), input, copy);
  }

  // -- the router and live refresh ----------------------------------------------------------------

  // Each render is one "visit"; a visit that a newer one replaced (the person clicked on while it was
  // still loading) must not show its page or start its refresh over the newer one's.
  const route = {
    timer: null,
    visit: 0,
    current(visit) {
      return visit === this.visit;
    },
    live(visit, refresh) {
      if (!this.current(visit)) return;
      this.stop();
      this.timer = setInterval(() => {
        const paused = document.hidden || document.getElementById("confirm").open;
        if (!paused && sessionStorage.getItem(LIVE) !== "off") refresh().catch(() => {});
      }, REFRESH_MS);
    },
    stop() {
      if (this.timer) clearInterval(this.timer);
      this.timer = null;
    },
  };

  function liveToggle(onRefresh) {
    const box = h("input", {
      type: "checkbox",
      id: "live",
      checked: sessionStorage.getItem(LIVE) !== "off",
      on: { change: (e) => sessionStorage.setItem(LIVE, e.target.checked ? "on" : "off") },
    });
    const stamp = h("span", { class: "live-stamp" }, "");
    const mark = () => { stamp.textContent = `updated ${new Date().toLocaleTimeString()}`; };
    const refresh = h("button", { type: "button", id: "refresh", on: { click: () => onRefresh() } }, "Refresh");
    return { node: h("span", { class: "live row" }, h("label", { class: "row" }, box, " live (every 5 s)"), refresh, stamp), mark };
  }

  function parseHash() {
    const raw = location.hash.replace(/^#/, "") || "/jobs";
    const [path, query] = raw.split("?");
    return { parts: path.split("/").filter(Boolean), params: new URLSearchParams(query || "") };
  }

  async function render() {
    route.stop();
    const visit = ++route.visit;
    const token = credential();
    const nav = document.getElementById("nav");
    const who = document.getElementById("who");
    const out = document.getElementById("sign-out");
    if (!token) {
      nav.hidden = true;
      who.textContent = "";
      out.hidden = true;
      renderSignIn();
      return;
    }
    nav.hidden = false;
    out.hidden = false;
    const match = PRODUCER_KEY.exec(token);
    who.textContent = isAdmin() ? "signed in as admin" : `signed in with producer key ${match ? match[1] : ""}`;
    for (const el of document.querySelectorAll(".admin-only")) el.hidden = !isAdmin();
    const { parts, params } = parseHash();
    for (const link of nav.querySelectorAll("a")) {
      link.classList.toggle("active", link.dataset.view === (parts[0] === "job" ? "jobs" : parts[0]));
    }
    try {
      if (parts[0] === "job" && parts[1]) await renderJob(visit, parts[1].toLowerCase());
      else if (parts[0] === "keys") await renderKeys();
      else if (parts[0] === "dlq") await renderDeadLetters();
      else await renderJobs(visit, params);
    } catch (error) {
      if (credential() && route.current(visit)) show(h("div", { class: "card" }, h("p", { class: "error" }, error.message)));
    }
  }

  // -- sign in ------------------------------------------------------------------------------------

  function renderSignIn(message) {
    const input = h("input", {
      type: "password",
      id: "credential",
      autocomplete: "off",
      placeholder: "admin token or pjk_… producer key",
      "aria-label": "admin token or producer key",
    });
    const problem = h("p", { class: "error", id: "signin-error" }, message || signInMessage);
    signInMessage = "";
    const form = h("form", {
      class: "card signin",
      id: "signin",
      on: {
        submit: async (e) => {
          e.preventDefault();
          const token = input.value.trim();
          const what = kind(token);
          if (!what) {
            problem.textContent = /^pj[tc]_/.test(token)
              ? "That is a job or callback token: it opens one job only (use it with the SDK or curl). " +
                "Sign in with an admin token or a producer key."
              : "That is neither an admin token (64 hex characters) nor a producer key (pjk_…).";
            return;
          }
          try {
            await api("GET", "jobs", { query: { limit: 1 }, token });
          } catch (error) {
            problem.textContent = error.message;
            return;
          }
          sessionStorage.setItem(STORE, token);
          input.value = "";
          render();
        },
      },
    },
    h("h1", {}, "Sign in"),
    h("p", {}, "Paste an admin token (", h("code", {}, "pipelinejobs serve"), " prints one; ",
      h("code", {}, "pipelinejobs admin-token"), " makes a fresh one) or a producer key. It is kept in ",
      "this tab only, and sent only in the Authorization header."),
    input,
    h("button", { type: "submit", class: "primary" }, "Sign in"),
    problem);
    show(form);
    input.focus();
  }

  // -- the jobs table -----------------------------------------------------------------------------

  const FILTERS = [
    ["state", "State"], ["pipeline_uuid", "Pipeline"], ["tag", "Tag"], ["owner", "Owner"],
    ["child_of", "Child of"], ["updated_after", "Updated after"], ["updated_before", "Updated before"],
  ];
  const listing = { key: "", cursors: [null], page: 0 };

  async function renderJobs(visit, params) {
    const filters = {};
    for (const [name] of FILTERS) if (params.get(name)) filters[name] = params.get(name);
    const key = JSON.stringify(filters);
    if (key !== listing.key) Object.assign(listing, { key, cursors: [null], page: 0 });

    const form = h("form", { class: "filters", id: "filters", on: { submit: (e) => {
      e.preventDefault();
      const next = new URLSearchParams();
      for (const [name] of FILTERS) {
        const field = form.elements.namedItem(name);
        if (field && field.value.trim()) next.set(name, field.value.trim());
      }
      location.hash = `#/jobs?${next}`;
    } } });
    for (const [name, label] of FILTERS) {
      if (name === "owner" && !isAdmin()) continue;
      let field;
      if (name === "state") {
        field = h("select", { name }, h("option", { value: "" }, "any"),
          STATES.map((s) => h("option", { value: s }, s)));
        field.value = filters.state || "";
      } else {
        const type = name.startsWith("updated_") ? "date" : "text";
        field = h("input", { name, type, value: filters[name] || "" });
      }
      form.append(h("label", {}, label, field));
    }
    form.append(h("button", { type: "submit", class: "primary" }, "Filter"),
      h("button", { type: "button", on: { click: () => { location.hash = "#/jobs"; } } }, "Clear"));

    const bar = h("div", { class: "counts", id: "counts", role: "img", "aria-label": "jobs per state" });
    const legend = h("div", { class: "legend", id: "legend" });
    const total = h("span", { class: "muted", id: "total" });
    const body = h("tbody", { id: "jobs" });
    const table = h("table", {},
      h("thead", {}, h("tr", {}, ["State", "Pipeline", "Name", "Tags", "Owner", "Gen", "Updated", "Pending", "Run"]
        .map((title) => h("th", {}, title)))),
      body);
    const older = h("button", { type: "button", id: "older" }, "Older →");
    const newer = h("button", { type: "button", id: "newer" }, "← Newer");
    const pageLabel = h("span", { class: "muted" });
    const live = liveToggle(() => refresh());

    async function refreshCounts() {
      const { state, ...rest } = filters;
      const counts = await api("GET", "jobs/counts", { query: rest });
      bar.replaceChildren();
      legend.replaceChildren();
      for (const s of STATES) {
        const n = counts.counts[s] || 0;
        if (!n) continue;
        const seg = h("span", { title: `${s}: ${n}`, "data-state": s,
          on: { click: () => { location.hash = `#/jobs?${new URLSearchParams({ ...rest, state: s })}`; } } });
        seg.style.width = `${(100 * n) / Math.max(1, counts.total)}%`;
        seg.style.background = `var(--s-${s})`;
        bar.append(seg);
        const dot = h("span", { class: "dot" });
        dot.style.background = `var(--s-${s})`;
        legend.append(h("button", { type: "button", "data-state": s, on: { click: () => {
          location.hash = `#/jobs?${new URLSearchParams({ ...rest, state: s })}`;
        } } }, dot, `${s} ${n}`));
      }
      total.textContent = `${counts.total} job${counts.total === 1 ? "" : "s"}` +
        (counts.complete ? "" : " (more than counted: narrow the filters)");
    }

    async function refreshPage() {
      const page = await api("GET", "jobs", { query: { ...filters, limit: PAGE, next: listing.cursors[listing.page] } });
      listing.cursors[listing.page + 1] = page.next;
      listing.cursors.length = listing.page + 2;
      body.replaceChildren(...page.jobs.map(jobRow));
      if (!page.jobs.length) {
        body.append(h("tr", {}, h("td", { colspan: 9, class: "muted" },
          Object.keys(filters).length ? "No job matches these filters." :
            "No jobs yet. Create one with the SDK (client.create_job) or `pipelinejobs jobs create`.")));
      }
      older.disabled = !page.next;
      newer.disabled = listing.page === 0;
      pageLabel.textContent = `page ${listing.page + 1}`;
    }

    async function refresh() {
      await Promise.all([refreshCounts(), refreshPage()]);
      live.mark();
    }

    older.addEventListener("click", async () => { listing.page += 1; await refreshPage(); });
    newer.addEventListener("click", async () => { listing.page = Math.max(0, listing.page - 1); await refreshPage(); });

    show(
      h("div", { class: "row" }, h("h1", {}, "Jobs"), h("span", { class: "spacer" }), live.node),
      h("div", { class: "card" }, form),
      h("div", { class: "card" }, h("div", { class: "row" }, h("strong", {}, "Jobs per state"), total), bar, legend),
      table,
      h("div", { class: "pager" }, newer, pageLabel, older),
    );
    await refresh();
    route.live(visit, refresh);
  }

  function jobRow(job) {
    const link = `#/job/${encodeURIComponent(job.uuid)}`;
    const tr = h("tr", { class: "clickable", "data-uuid": job.uuid, on: { click: (e) => {
      if (e.target.closest("a")) return;
      location.hash = link;
    } } },
    h("td", {}, stateBadge(job.state)),
    h("td", { class: "mono" }, job.pipeline_uuid),
    h("td", {}, h("a", { href: link, class: "job-link" }, job.name || job.uuid.slice(0, 8))),
    h("td", {}, (job.tags || []).map((t) => h("span", { class: "tag" }, t))),
    h("td", { class: "mono" }, job.owner),
    h("td", { class: "num" }, job.generation),
    h("td", { title: job.updated_at }, ago(job.updated_at)),
    h("td", { class: "num" }, duration(job.pending_seconds)),
    h("td", { class: "num" }, duration(job.run_seconds)));
    return tr;
  }

  // -- one job ------------------------------------------------------------------------------------

  async function renderJob(visit, uuid) {
    if (!UUID.test(uuid)) {
      show(h("div", { class: "card" }, h("p", { class: "error" }, "That is not a job id.")));
      return;
    }
    const path = `jobs/${uuid}`;
    const head = h("div", { class: "row" });
    const fields = h("dl", { class: "fields", id: "fields" });
    const actions = h("div", { class: "actions", id: "actions" });
    const dataBox = h("textarea", { id: "event-data", placeholder: '{"progress": 0.5}  (optional JSON object sent as the event\'s data)' });
    const secret = h("div", { id: "secret" });
    const timeline = h("ol", { class: "timeline", id: "history" });
    const outputsBody = h("tbody", { id: "outputs" });
    const outputsMore = h("button", { type: "button", id: "outputs-more", hidden: true }, "More outputs");
    const outputsSource = h("span", { class: "muted", id: "outputs-source" });
    const dataPre = h("pre", { id: "job-data" });
    const live = liveToggle(() => refresh());
    let outputsCursor = null;
    let outputsPages = 0;
    let job = null;

    async function refreshJob() {
      job = await api("GET", path);
      head.replaceChildren(h("h1", {}, job.name || job.uuid), stateBadge(job.state),
        h("span", { class: "muted" }, `generation ${job.generation}`));
      const rows = [
        ["uuid", job.uuid], ["pipeline", job.pipeline_uuid], ["state", job.state],
        ["last event", job.last_event], ["owner", job.owner], ["name", job.name],
        ["tags", (job.tags || []).join(", ")], ["session", job.session], ["agent", job.agent], ["task", job.task],
        ["archive path", job.archive_path], ["child of", (job.child_of || []).join(", ")],
        ["created", when(job.created_at)], ["updated", when(job.updated_at)],
        ["in state since", when(job.state_entered_at)],
        ["pending", duration(job.pending_seconds)], ["run", duration(job.run_seconds)],
        ["heartbeat", job.heartbeat_seconds ? `${duration(job.heartbeat_seconds)}${job.heartbeat_due ? `, due ${when(job.heartbeat_due)}` : ""}` : "none"],
        ["timeout", job.timeout_seconds ? `${duration(job.timeout_seconds)}${job.timeout_due ? `, due ${when(job.timeout_due)}` : ""}` : "none"],
        ["deadline missed", job.deadline_missed], ["queued events", job.queued_events],
      ];
      fields.replaceChildren(...rows.filter(([, v]) => v !== null && v !== undefined && v !== "")
        .flatMap(([k, v]) => [h("dt", {}, k), h("dd", { "data-field": k }, v)]));
      dataPre.textContent = json(job.data || {});
      actions.replaceChildren(...(job.allowed_events || []).map((name) => h("button", {
        type: "button",
        class: CONFIRM[name] ? "danger" : "",
        "data-event": name,
        on: { click: () => send(name) },
      }, name)));
      if (!(job.allowed_events || []).length) actions.append(h("span", { class: "muted" }, "No event may be sent now."));
    }

    async function refreshHistory() {
      const entries = [];
      let cursor = null;
      do {
        const page = await api("GET", `${path}/events`, { query: { limit: 100, next: cursor } });
        entries.push(...page.events);
        cursor = page.next;
      } while (cursor && entries.length < 1000);
      timeline.replaceChildren(...entries.map((e) => h("li", { class: e.outcome, "data-event-id": e.event_id },
        h("div", {}, h("span", { class: "what" }, e.name), " ", h("span", { class: `outcome ${e.outcome}` }, e.outcome),
          e.from_state ? ` ${e.from_state} → ${e.to_state}` : ""),
        h("div", { class: "meta" }, `${when(e.at)} · by ${e.by || "?"} · generation ${e.generation ?? "–"}`),
        e.reason ? h("div", { class: "reason" }, e.reason) : null,
        e.data && Object.keys(e.data).length ? h("pre", {}, json(e.data)) : null)));
      if (!entries.length) timeline.append(h("li", { class: "muted" }, "No events yet."));
    }

    async function loadOutputs(more) {
      const page = await api("GET", `${path}/outputs`, { query: { limit: 50, next: more ? outputsCursor : null } });
      outputsCursor = page.next;
      outputsPages = more ? outputsPages + 1 : 1;
      outputsSource.textContent = page.source === "manifest"
        ? "from the manifest its last index recorded"
        : "listed live from its archive path";
      const rows = page.outputs.map((o) => h("tr", { "data-key": o.key },
        h("td", { class: "mono" }, o.key),
        h("td", {}, o.level || ""),
        h("td", { class: "num" }, bytes(o.size)),
        h("td", {}, when(o.modified)),
        h("td", {}, h("a", { href: o.url, download: o.key.split("/").pop(), rel: "noopener noreferrer" }, "download"))));
      if (more) outputsBody.append(...rows);
      else outputsBody.replaceChildren(...rows);
      if (!outputsBody.children.length) {
        outputsBody.append(h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No outputs under the archive path yet.")));
      }
      outputsMore.hidden = !outputsCursor;
    }

    async function refresh() {
      // the outputs' first page too, unless the person paged further (their rows would be cut)
      const outputs = outputsPages > 1 ? null : loadOutputs(false);
      await Promise.all([refreshJob(), refreshHistory(), outputs]);
      live.mark();
    }

    async function send(name) {
      let data;
      if (CONFIRM[name]) {
        const answer = await confirmDialog(CONFIRM[name]);
        if (!answer) return;
        data = CONFIRM[name].data(answer.checked);
      } else if (!NO_DATA.has(name) && dataBox.value.trim()) {
        try {
          data = JSON.parse(dataBox.value);
        } catch (_) {
          toast("The event data is not valid JSON", true);
          return;
        }
        if (!data || typeof data !== "object" || Array.isArray(data)) {
          toast("The event data must be a JSON object", true);
          return;
        }
      }
      const idempotencyKey = `ui-${crypto.randomUUID()}`;
      let accepted;
      try {
        accepted = await api("POST", `${path}/events`, {
          body: data === undefined ? { name } : { name, data },
          headers: { "Idempotency-Key": idempotencyKey },
        });
      } catch (error) {
        toast(`${name} refused: ${error.message}`, true);
        return;
      }
      toast(`${name} accepted; applying…`);
      const outcome = await settle(accepted.event_id);
      if (name === "delete" && outcome.status === "applied") {
        toast("The job was deleted");
        location.hash = "#/jobs";
        return;
      }
      toast(outcome.status === "queued" ? `${name} is still queued` : `${name} ${outcome.status}${outcome.reason ? `: ${outcome.reason}` : ""}`,
        outcome.status === "rejected");
      await refresh();
    }

    async function settle(eventId) {
      const deadline = Date.now() + 20000;
      let status = { status: "queued" };
      while (Date.now() < deadline) {
        try {
          status = await api("GET", `${path}/events/${encodeURIComponent(eventId)}`);
        } catch (error) {
          if (error.status === 404) return { status: "applied" }; // a delete applied: the job is gone
          throw error;
        }
        if (status.status !== "queued") return status;
        await new Promise((resolve) => { setTimeout(resolve, 400); });
      }
      return status;
    }

    async function freshToken() {
      let answer;
      try {
        answer = await api("POST", `${path}/token`);
      } catch (error) {
        toast(`No fresh token: ${error.message}`, true);
        return;
      }
      secret.replaceChildren(
        h("p", { class: "warn" }, "Shown once, in this page only: copy what you need now. The job's previous token stays valid for its grace period."),
        secretBox("job token", answer.token),
        answer.callback_url ? secretBox("callback URL", answer.callback_url) : null,
      );
    }

    outputsMore.addEventListener("click", () => loadOutputs(true));
    try {
      await refreshJob();
    } catch (error) {
      if (!route.current(visit)) return;
      if (error.status === 404) {
        show(h("div", { class: "card" }, h("p", { class: "error" }, `No job ${uuid} (deleted, or not yours).`),
          h("a", { href: "#/jobs" }, "Back to the jobs")));
        return;
      }
      throw error;
    }
    if (!route.current(visit)) return;
    show(
      h("div", { class: "row" }, h("a", { href: "#/jobs" }, "← Jobs"), h("span", { class: "spacer" }), live.node),
      head,
      h("div", { class: "grid2" },
        h("div", {},
          h("div", { class: "card" }, h("h2", {}, "Fields"), fields),
          h("div", { class: "card" }, h("h2", {}, "Send an event"),
            h("p", { class: "muted" }, "The events your credential may send now:"), actions,
            h("label", { class: "grow" }, "Data (optional)", dataBox),
            h("div", { class: "actions" }, h("button", { type: "button", id: "fresh-token", on: { click: freshToken } },
              isAdmin() ? "Fresh token and callback URL" : "Fresh job token")),
            secret),
          h("div", { class: "card" }, h("h2", {}, "Data"), dataPre)),
        h("div", {},
          h("div", { class: "card" }, h("div", { class: "row" }, h("h2", {}, "Outputs"), outputsSource),
            h("table", {}, h("thead", {}, h("tr", {}, ["Key", "Level", "Size", "Modified", ""].map((t) => h("th", {}, t)))), outputsBody),
            outputsMore),
          h("div", { class: "card" }, h("h2", {}, "History"), timeline))),
    );
    await Promise.all([refreshHistory(), loadOutputs(false)]);
    live.mark();
    route.live(visit, refresh);
  }

  // -- producer keys (admin) ----------------------------------------------------------------------

  async function renderKeys() {
    if (!isAdmin()) {
      show(h("div", { class: "card" }, h("p", {}, "Producer keys are managed by an admin.")));
      return;
    }
    const body = h("tbody", { id: "keys" });
    const issued = h("div", { id: "issued" });
    const label = h("input", { name: "label", id: "key-label", required: true, maxlength: 100, placeholder: "lab-a reactor" });
    const pipelines = h("input", { name: "pipelines", id: "key-pipelines", required: true, placeholder: "demo-pipeline, other (or *)" });
    const expires = h("select", { name: "expires", id: "key-expires" },
      [["", "never"], ["30", "in 30 days"], ["90", "in 90 days"], ["365", "in a year"]].map(([v, t]) => h("option", { value: v }, t)));

    async function refresh() {
      const { keys } = await api("GET", "keys");
      body.replaceChildren(...keys.map((k) => h("tr", { "data-key-id": k.id },
        h("td", { class: "mono" }, k.id), h("td", {}, k.label), h("td", {}, k.pipelines.join(", ")),
        h("td", {}, k.status), h("td", {}, when(k.created_at)), h("td", {}, k.expires_at ? when(k.expires_at) : "never"),
        h("td", {}, k.status === "revoked" ? "" : h("button", { type: "button", class: "danger", "data-revoke": k.id, on: { click: async () => {
          const answer = await confirmDialog({ title: `Revoke key ${k.id}?`, text: `“${k.label}” is refused at once, and its events not applied yet are rejected.`, button: "Revoke" });
          if (!answer) return;
          try { await api("DELETE", `keys/${encodeURIComponent(k.id)}`); toast(`Key ${k.id} revoked`); } catch (error) { toast(error.message, true); }
          await refresh();
        } } }, "Revoke")))));
      if (!keys.length) body.append(h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No producer keys yet.")));
    }

    const form = h("form", { class: "filters", id: "issue-key", on: { submit: async (e) => {
      e.preventDefault();
      const scope = pipelines.value.split(",").map((p) => p.trim()).filter(Boolean);
      const request = { label: label.value.trim(), pipelines: scope };
      if (expires.value) request.expires_at = Date.now() / 1000 + Number(expires.value) * 86400;
      let key;
      try { key = await api("POST", "keys", { body: request }); } catch (error) { toast(error.message, true); return; }
      issued.replaceChildren(h("p", { class: "warn" }, `Key ${key.id} for “${key.label}”: shown this once. Give it to the reactor now (PIPELINEJOBS_KEY).`),
        secretBox("producer key", key.key));
      form.reset();
      await refresh();
    } } },
    h("label", {}, "Label", label), h("label", {}, "Pipelines", pipelines), h("label", {}, "Expires", expires),
    h("button", { type: "submit", class: "primary" }, "Issue a key"));

    show(h("h1", {}, "Producer keys"),
      h("div", { class: "card" }, h("p", { class: "muted" }, "A key creates jobs for its pipelines and drives its own jobs; it never resets, deletes or manages keys."), form, issued),
      h("table", {}, h("thead", {}, h("tr", {}, ["Id", "Label", "Pipelines", "Status", "Created", "Expires", ""].map((t) => h("th", {}, t)))), body));
    await refresh();
  }

  // -- the dead-letter queue (admin) --------------------------------------------------------------

  async function renderDeadLetters() {
    if (!isAdmin()) {
      show(h("div", { class: "card" }, h("p", {}, "The dead-letter queue is an admin's.")));
      return;
    }
    const depth = h("strong", { id: "dlq-depth" });
    const body = h("tbody", { id: "dlq" });
    const progress = h("span", { class: "muted", id: "redrive-progress" });
    const redrive = h("button", { type: "button", class: "primary", id: "redrive" }, "Redrive all");

    async function refresh() {
      const view = await api("GET", "dlq", { query: { limit: 50 } });
      depth.textContent = `${view.approximate_count} message${view.approximate_count === 1 ? "" : "s"}`;
      redrive.disabled = !view.approximate_count;
      body.replaceChildren(...view.messages.map((m) => h("tr", {},
        h("td", { class: "mono" }, m.uuid ? h("a", { href: `#/job/${encodeURIComponent(m.uuid)}` }, m.uuid) : "?"),
        h("td", {}, m.name || "?"), h("td", { class: "mono" }, m.event_id || "–"),
        h("td", { class: "num" }, m.receive_count), h("td", {}, when(m.sent_at)))));
      if (!view.messages.length) body.append(h("tr", {}, h("td", { colspan: 5, class: "muted" }, "The dead-letter queue is empty.")));
    }

    redrive.addEventListener("click", async () => {
      const answer = await confirmDialog({ title: "Move every dead-lettered event back?", text: "They go back to the events queue and are applied again (each at most once). Fix the cause first.", button: "Redrive" });
      if (!answer) return;
      redrive.disabled = true;
      let moved = 0;
      try {
        for (;;) {
          const step = await api("POST", "dlq/redrive", { body: { max: 100 } });
          moved += step.moved;
          progress.textContent = `moved ${moved}, about ${step.remaining} left`;
          if (!step.moved || !step.remaining) break;
        }
        toast(`Moved ${moved} message${moved === 1 ? "" : "s"} back to the events queue`);
      } catch (error) {
        toast(`Redrive stopped after ${moved}: ${error.message}`, true);
      }
      await refresh();
    });

    show(h("h1", {}, "Dead letters"),
      h("div", { class: "card" }, h("p", {}, "Events the worker failed to apply after every retry (a failure of the machinery, never a caller's mistake). Tokens are never shown."),
        h("div", { class: "row" }, depth, redrive, progress)),
      h("table", {}, h("thead", {}, h("tr", {}, ["Job", "Event", "Event id", "Receives", "Sent (UTC)"].map((t) => h("th", {}, t)))), body));
    await refresh();
  }

  // -- start --------------------------------------------------------------------------------------

  document.getElementById("sign-out").addEventListener("click", () => signOut("Signed out."));
  window.addEventListener("hashchange", render);
  render();
})();
