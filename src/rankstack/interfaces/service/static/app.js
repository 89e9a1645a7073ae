// rankstack search page: plain JavaScript, no build step, no dependency. It uses only the service's
// API: GET v1/pipelines, GET v1/queries, POST v1/search. Every text from the API is put in the page
// as text (textContent, text nodes), never as HTML.
(() => {
  "use strict";

  const $ = (sel, root = document) => root.querySelector(sel);
  const SVG = "http://www.w3.org/2000/svg";

  const form = $("#search-form");
  const input = $("#q");
  const selA = $("#pipeline-a");
  const selB = $("#pipeline-b");
  const compare = $("#compare");
  const kSel = $("#k");
  const pick = $("#query-pick");
  const main = $("#results");
  const errBox = $("#error");

  const state = { pipelines: [], byText: new Map(), byId: new Map(), qrels: false, seq: 0 };

  // -- small DOM helpers ------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  // text with the [start, end) spans wrapped in <mark>: text nodes only, so markup in a document
  // (a "<script>" in its text) is shown as the characters it is
  function marked(text, spans) {
    const frag = document.createDocumentFragment();
    let at = 0;
    for (const [s, e] of spans || []) {
      if (s < at || e <= s) continue;
      if (s > at) frag.append(document.createTextNode(text.slice(at, s)));
      frag.append(el("mark", null, text.slice(s, e)));
      at = e;
    }
    if (at < text.length) frag.append(document.createTextNode(text.slice(at)));
    return frag;
  }

  function fmt(x) {
    if (x === null || x === undefined) return "–";
    const a = Math.abs(x);
    if (a !== 0 && (a < 0.001 || a >= 1e5)) return x.toExponential(3);
    return x.toFixed(4);
  }

  const ms = (x) => (x >= 100 ? x.toFixed(0) : x.toFixed(1)) + " ms";

  function showError(msg) {
    errBox.textContent = msg;
    errBox.hidden = !msg;
  }

  async function api(path, body) {
    const opts = body === undefined ? {} : {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    };
    const r = await fetch(path, opts);
    let data = null;
    try { data = await r.json(); } catch (_) { data = null; }
    if (!r.ok) {
      const e = new Error((data && data.error) || `HTTP ${r.status}`);
      e.status = r.status;
      e.type = data && data.error_type;
      throw e;
    }
    return data;
  }

  // -- start-up: pipelines and loaded queries ------------------------------------------------------
  async function init() {
    let info;
    try {
      info = await api("v1/pipelines");
    } catch (e) {
      $("#index-info").textContent = "";
      showError(`The service does not answer: ${e.message}`);
      return;
    }
    state.pipelines = info.pipelines;
    state.qrels = info.qrels;
    const idx = info.index || {};
    const parts = [`index ${idx.name || ""}`.trim(), `${(idx.documents || 0).toLocaleString("en")} documents`];
    const coll = idx.collection ? String(idx.collection).replace(/\/+$/, "").split("/").pop() : "";
    if (coll && coll !== idx.name) parts.push(`collection ${coll}`);
    parts.push(`${info.pipelines.length} pipeline${info.pipelines.length === 1 ? "" : "s"}`);
    if (info.qrels) parts.push("judgments loaded");
    $("#index-info").textContent = parts.join(" · ");
    for (const sel of [selA, selB]) {
      sel.replaceChildren(...info.pipelines.map((p) => el("option", { value: p.name, title: p.description }, p.name)));
    }
    selA.value = info.default || (info.pipelines[0] && info.pipelines[0].name);
    selB.value = (info.pipelines.find((p) => p.name !== selA.value) || info.pipelines[0] || {}).name || "";
    compare.disabled = info.pipelines.length < 2;
    if (info.queries > 0) await loadQueries();
    restoreFromHash();
  }

  async function loadQueries() {
    let data;
    try {
      data = await api("v1/queries?limit=5000");
    } catch (e) {
      return; // the page works without them
    }
    const qs = data.queries.slice().sort((a, b) => Number(b.judged) - Number(a.judged));
    const list = $("#query-list");
    for (const q of qs) {
      state.byText.set(q.text, q.id);
      state.byId.set(q.id, q);
      list.append(el("option", { value: q.text, label: `${q.id}${q.judged ? " · judged" : ""}` }));
    }
    const shown = data.qrels ? qs.filter((q) => q.judged) : qs;
    pick.append(...shown.slice(0, 2000).map((q) => {
      const text = q.text.length > 70 ? q.text.slice(0, 69) + "…" : q.text;
      return el("option", { value: q.id }, `${q.id}: ${text}`);
    }));
    $("#query-pick-label").hidden = shown.length === 0;
  }

  // -- the address keeps the view: query, pipelines, k, the loaded query's id ----------------------------
  function writeHash(q, qid) {
    const p = new URLSearchParams({ q, p: selA.value, k: kSel.value });
    if (compare.checked) p.set("b", selB.value);
    if (qid) p.set("qid", qid);
    history.replaceState(null, "", "#" + p.toString());
  }

  function restoreFromHash() {
    const p = new URLSearchParams(location.hash.slice(1));
    if (!p.get("q")) return;
    input.value = p.get("q");
    const has = (name) => state.pipelines.some((x) => x.name === name);
    if (has(p.get("p"))) selA.value = p.get("p");
    if (p.get("b") && has(p.get("b")) && !compare.disabled) {
      compare.checked = true;
      selB.disabled = false;
      selB.value = p.get("b");
    }
    if ([...kSel.options].some((o) => o.value === p.get("k"))) kSel.value = p.get("k");
    if (p.get("qid") && state.byId.has(p.get("qid"))) pick.value = p.get("qid");
    search();
  }

  function queryId(text) {
    if (pick.value && state.byId.has(pick.value) && state.byId.get(pick.value).text === text) return pick.value;
    return state.byText.has(text) ? state.byText.get(text) : null;
  }

  // -- searching ------------------------------------------------------------------------------
  async function search() {
    const q = input.value;
    if (!q.trim()) {
      showError("Type a query first.");
      input.focus();
      return;
    }
    const qid = queryId(q);
    pick.value = qid && [...pick.options].some((o) => o.value === qid) ? qid : "";
    const k = Number(kSel.value);
    const body = (pipeline) => ({ query: q, pipeline, k, return_text: true, query_id: qid });
    const seq = ++state.seq;
    main.setAttribute("aria-busy", "true");
    showError("");
    writeHash(q, qid);
    try {
      if (compare.checked && !compare.disabled) {
        const [a, b] = await Promise.all([api("v1/search", body(selA.value)), api("v1/search", body(selB.value))]);
        if (seq === state.seq) renderCompare(a, b);
      } else {
        const res = await api("v1/search", body(selA.value));
        if (seq === state.seq) renderSingle(res);
      }
    } catch (e) {
      if (seq === state.seq) {
        main.replaceChildren();
        showError(e.message);
      }
    } finally {
      if (seq === state.seq) {
        main.setAttribute("aria-busy", "false");
        main.dataset.done = String(seq); // the view of search number `seq` is on the page
      }
    }
  }

  // -- rendering --------------------------------------------------------------------------------
  function summary(res) {
    const head = el("div", { class: "summary" });
    const p = state.pipelines.find((x) => x.name === res.pipeline);
    head.append(el("h2", null, res.pipeline, p && p.description !== res.pipeline
      ? el("span", { class: "desc" }, p.description) : null));
    const facts = el("p", { class: "facts" });
    const v = res["ndcg@10"];
    if (v !== null && v !== undefined) facts.append(el("span", { class: "ndcg" }, `nDCG@10 ${v.toFixed(4)}`));
    facts.append(el("span", null, `${res.results.length} of ${res.total.toLocaleString("en")} ranked`));
    facts.append(el("span", { class: "took" }, `took ${ms(res.took_ms)}`));
    const steps = Object.entries(res.stage_ms).map(([n, t]) => `${n} ${ms(t)}`).join(" · ");
    if (steps) facts.append(el("span", { class: "steps muted" }, steps));
    head.append(facts);
    for (const w of res.warnings || []) head.append(el("p", { class: "warning" }, w));
    return head;
  }

  function queryBar(res) {
    const bar = el("div", { class: "query-bar" });
    bar.append(el("span", { class: "print-only query-text" }, `“${res.query}”`));
    if (res.query_id !== null && res.query_id !== undefined) {
      bar.append(el("span", { class: "qid" }, `query ${res.query_id}`));
      bar.append(el("span", { class: res.judged ? "judged" : "muted" }, res.judged ? "judged" : "no judgments"));
    } else if (state.qrels) {
      bar.append(el("span", { class: "muted" }, "free-text query: no judgments (choose a loaded query for labels and nDCG)"));
    }
    if (res.query_terms && res.query_terms.length) {
      bar.append(el("span", { class: "terms muted" }, "terms: ", ...res.query_terms.flatMap((t, i) =>
        [i ? " " : null, el("code", null, t)])));
    }
    return bar;
  }

  function labelBadge(hit, res) {
    if (!res.judged) return null;
    if (hit.label === null || hit.label === undefined) {
      return el("span", { class: "label unjudged", dataset: { label: "" } }, "unjudged");
    }
    return el("span", { class: "label " + (hit.label > 0 ? "rel" : "nonrel"), dataset: { label: hit.label } },
      `rel ${hit.label}`);
  }

  function hitItem(hit, res, delta) {
    const hl = hit.highlights || { title: [], text: [] };
    const title = el("h3", { class: "title" });
    if (hit.title) title.append(marked(hit.title, hl.title));
    else title.append(el("span", { class: "muted" }, hit.id));
    const stages = el("ul", { class: "stages" });
    for (const name of res.stage_names) {
      stages.append(el("li", null, el("span", { class: "stage-name" }, name), " ",
        el("span", { class: "stage-score" }, fmt(hit.stages[name]))));
    }
    const li = el("li", { class: "hit", dataset: { doc: hit.id, rank: hit.rank } },
      el("div", { class: "hit-head" },
        el("span", { class: "rank" }, String(hit.rank)),
        title,
        labelBadge(hit, res),
        delta),
      el("div", { class: "hit-meta" },
        el("code", { class: "docid" }, hit.id),
        el("span", { class: "score" }, `score ${fmt(hit.score)}`),
        stages));
    if (hit.text) {
      const text = el("p", { class: "text clamp" }, marked(hit.text, hl.text));
      const more = el("button", { type: "button", class: "more" }, "more");
      more.addEventListener("click", () => {
        const open = text.classList.toggle("clamp");
        more.textContent = open ? "more" : "less";
      });
      li.append(text, more);
    }
    return li;
  }

  function renderSingle(res) {
    const ol = el("ol", { class: "hits" }, ...res.results.map((h) => hitItem(h, res, null)));
    const col = el("section", { class: "col single" }, summary(res),
      res.results.length ? ol : el("p", { class: "empty" }, "No document matches."));
    main.replaceChildren(queryBar(res), col);
    main.dataset.view = "single";
  }

  function renderCompare(a, b) {
    const ra = new Map(a.results.map((h) => [h.id, h.rank]));
    const rb = new Map(b.results.map((h) => [h.id, h.rank]));
    const listA = el("ol", { class: "hits" }, ...a.results.map((h) =>
      hitItem(h, a, rb.has(h.id) ? null : el("span", { class: "delta out" }, "out"))));
    const listB = el("ol", { class: "hits" }, ...b.results.map((h) => {
      let d;
      if (!ra.has(h.id)) d = el("span", { class: "delta new" }, "new");
      else {
        const up = ra.get(h.id) - h.rank;
        d = up > 0 ? el("span", { class: "delta up" }, `▲${up}`)
          : up < 0 ? el("span", { class: "delta down" }, `▼${-up}`)
            : el("span", { class: "delta same" }, "=");
      }
      return hitItem(h, b, d);
    }));
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "links");
    svg.setAttribute("aria-hidden", "true");
    const grid = el("div", { class: "compare" },
      el("section", { class: "col col-a" }, summary(a), listA),
      svg,
      el("section", { class: "col col-b" }, summary(b), listB));
    main.replaceChildren(queryBar(a), grid);
    main.dataset.view = "compare";
    drawLinks();
    watch(grid);
  }

  // a line from a document's rank in the left column to its rank in the right one
  function drawLinks() {
    const svg = $("svg.links", main);
    if (!svg) return;
    const box = svg.getBoundingClientRect();
    const w = Math.max(box.width, 1);
    svg.setAttribute("viewBox", `0 0 ${w} ${Math.max(box.height, 1)}`);
    svg.setAttribute("width", w);
    svg.setAttribute("height", Math.max(box.height, 1));
    const left = new Map([...main.querySelectorAll(".col-a .hit")].map((li) => [li.dataset.doc, li]));
    const lines = [];
    for (const liB of main.querySelectorAll(".col-b .hit")) {
      const liA = left.get(liB.dataset.doc);
      if (!liA) continue;
      const ya = anchor(liA) - box.top;
      const yb = anchor(liB) - box.top;
      const ra = Number(liA.dataset.rank);
      const rb = Number(liB.dataset.rank);
      const line = document.createElementNS(SVG, "line");
      line.setAttribute("x1", 2);
      line.setAttribute("y1", ya.toFixed(1));
      line.setAttribute("x2", (w - 2).toFixed(1));
      line.setAttribute("y2", yb.toFixed(1));
      line.setAttribute("class", rb < ra ? "up" : rb > ra ? "down" : "same");
      line.dataset.doc = liB.dataset.doc;
      lines.push(line);
    }
    svg.replaceChildren(...lines);
  }

  function anchor(li) {
    const r = $(".rank", li).getBoundingClientRect();
    return r.top + r.height / 2;
  }

  let observer = null;
  function watch(grid) {
    if (observer) observer.disconnect();
    if (!("ResizeObserver" in window)) return;
    let pending = false;
    observer = new ResizeObserver(() => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => { pending = false; drawLinks(); });
    });
    for (const c of grid.querySelectorAll(".col")) observer.observe(c);
  }

  // -- wiring -----------------------------------------------------------------------------------
  form.addEventListener("submit", (e) => { e.preventDefault(); search(); });
  compare.addEventListener("change", () => {
    selB.disabled = !compare.checked;
    if (input.value.trim()) search();
  });
  for (const sel of [selA, selB, kSel]) sel.addEventListener("change", () => { if (input.value.trim()) search(); });
  pick.addEventListener("change", () => {
    const q = state.byId.get(pick.value);
    if (!q) return;
    input.value = q.text;
    search();
  });
  input.addEventListener("input", () => {
    // a query chosen from the autocomplete list: search it at once
    if (state.byText.has(input.value) && document.activeElement === input) {
      const id = state.byText.get(input.value);
      if (pick.value !== id) pick.value = [...pick.options].some((o) => o.value === id) ? id : "";
    }
  });
  window.addEventListener("resize", drawLinks);
  window.addEventListener("beforeprint", drawLinks);
  window.addEventListener("afterprint", drawLinks);
  if (window.matchMedia) {
    const mq = window.matchMedia("print");
    if (mq.addEventListener) mq.addEventListener("change", drawLinks);
  }
  window.rankstackSearch = { search, drawLinks }; // for tests and the curious
  init();
})();
