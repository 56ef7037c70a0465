// The page's script: every figure it shows is one the API answered, written as the API wrote it.
// It computes nothing about a prediction; it only lays the API's numbers out (the waterfall's
// running sum and the ROC point's 1 - specificity are drawing positions, never shown as figures).
// URLs are relative, so the page works under any path prefix.
"use strict";

(() => {
  const KEY_STORAGE = "malignancy-predictor.api-key";
  const ARTICLE_MARKS = ["0.5", "0.7", "0.8", "0.9"];
  const DEBOUNCE_MS = 200;
  const SVG = "http://www.w3.org/2000/svg";
  const REASONS = {
    both_classes:
      "Both classes are in the prediction set: at this confidence the model cannot tell benign from malignant.",
    no_class:
      "No class is in the prediction set: neither fits this biopsy as well as the calibration cases at this confidence.",
    atypical_input:
      "These scores are unlike the training data, so no figure measured on that data describes this answer.",
  };
  const config = JSON.parse(document.getElementById("config").textContent);
  const $ = (id) => document.getElementById(id);

  // -- numbers exactly as the API wrote them ---------------------------------------------------
  // JSON.parse's reviver sees each number's source text (where the browser gives it): kept, so
  // "0.008717363142864464" is shown as sent, not as JavaScript would print the double.
  class JsonNumber {
    constructor(value, text) {
      this.value = value;
      this.text = text;
    }
    valueOf() {
      return this.value;
    }
    toString() {
      return this.text;
    }
    toJSON() {
      return this.value;
    }
  }
  const parseExact = (text) =>
    JSON.parse(text, (key, value, context) =>
      typeof value === "number"
        ? new JsonNumber(value, context && typeof context.source === "string" ? context.source : String(value))
        : value,
    );
  const isNumber = (v) => v instanceof JsonNumber;
  const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v) && !isNumber(v);
  const rounded = (v, digits = 3) => (isNumber(v) ? Number(v).toFixed(digits) : "");

  // -- the API ---------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(message, status, body) {
      super(message);
      this.status = status;
      this.body = body;
    }
  }

  function storedKey() {
    try {
      return sessionStorage.getItem(KEY_STORAGE) || "";
    } catch {
      return "";
    }
  }

  async function api(path, { method = "GET", body, signal } = {}) {
    const headers = { Accept: "application/json" };
    const key = storedKey();
    if (key) headers["X-API-Key"] = key;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
        cache: "no-store",
        credentials: "same-origin",
      });
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new ApiError(`The request could not be sent or was not answered: ${error.message}`, 0);
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? parseExact(text) : null;
    } catch {
      data = null;
    }
    if (!response.ok) {
      const message =
        data && typeof data.message === "string"
          ? data.message
          : `The service answered ${response.status} ${response.statusText}`.trim();
      throw new ApiError(message, response.status, data);
    }
    if (!isObject(data)) throw new ApiError("The service's answer is not a JSON object.", response.status);
    return { data, requestId: response.headers.get("X-Request-ID") || "" };
  }

  function showError(element, error) {
    element.textContent = error instanceof ApiError ? error.message : `Unexpected error: ${error}`;
    element.hidden = false;
  }
  function clearError(element) {
    element.textContent = "";
    element.hidden = true;
  }
  const isAbort = (error) => error && error.name === "AbortError";

  function debounce(fn, ms) {
    let timer = 0;
    return (...args) => {
      clearTimeout(timer);
      timer = setTimeout(() => fn(...args), ms);
    };
  }

  // One request in flight per purpose: a newer one aborts the older, whose answer is dropped.
  function latest() {
    let controller = null;
    return () => {
      if (controller) controller.abort();
      controller = new AbortController();
      return controller.signal;
    };
  }

  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    node.append(...children);
    return node;
  }
  function svg(tag, attributes = {}, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }
  const words = (name) => {
    const text = String(name).replace(/_/g, " ");
    return text.charAt(0).toUpperCase() + text.slice(1);
  };

  // -- state -----------------------------------------------------------------------------------
  const state = { card: null, features: [], thresholdText: "", caseTried: false, markPoints: null };

  // -- views -----------------------------------------------------------------------------------
  const VIEWS = ["case", "threshold", "monitoring", "batch"];
  function showView(moveFocus) {
    const wanted = location.hash.slice(1);
    const name = VIEWS.includes(wanted) ? wanted : "case";
    for (const view of VIEWS) $(`view-${view}`).hidden = view !== name;
    for (const link of document.querySelectorAll("nav a[data-view]")) {
      if (link.dataset.view === name) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    if (name === "monitoring") loadMonitoring();
    if (moveFocus) {
      const heading = $(`h-${name}`);
      heading.setAttribute("tabindex", "-1");
      heading.focus();
    }
  }

  // -- a case ----------------------------------------------------------------------------------
  function buildScores(features) {
    const holder = $("scores");
    holder.replaceChildren();
    for (const feature of features) {
      const id = feature.name;
      const range = el("input", {
        type: "range",
        id: `range-${id}`,
        min: String(feature.min),
        max: String(feature.max),
        step: "1",
        "aria-labelledby": `label-${id}`,
        "aria-describedby": `desc-${id}`,
      });
      const number = el("input", {
        type: "number",
        id: `score-${id}`,
        name: id,
        min: String(feature.min),
        max: String(feature.max),
        step: "1",
        inputmode: "numeric",
        "aria-describedby": `desc-${id}`,
      });
      range.addEventListener("input", () => {
        number.value = range.value;
        number.removeAttribute("aria-invalid");
      });
      number.addEventListener("input", () => {
        number.removeAttribute("aria-invalid");
        if (number.value !== "") range.value = number.value;
      });
      holder.append(
        el(
          "div",
          { class: "score" },
          el("label", { id: `label-${id}`, for: `score-${id}` }, words(id)),
          el("p", { id: `desc-${id}`, class: "muted desc" }, feature.description),
          el("div", { class: "pair" }, range, number),
        ),
      );
    }
  }

  function setScores(scores) {
    for (const feature of state.features) {
      const value = String(scores[feature.name]);
      $(`score-${feature.name}`).value = value;
      $(`range-${feature.name}`).value = value;
      $(`score-${feature.name}`).removeAttribute("aria-invalid");
    }
  }

  // What the user typed, as JSON would carry it: the API checks it and names any problem.
  function jsonValue(text) {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }

  function caseBody() {
    const body = {};
    for (const feature of state.features) {
      body[feature.name] = jsonValue($(`score-${feature.name}`).value.trim());
    }
    body.threshold = jsonValue(state.thresholdText);
    return body;
  }

  const caseSignal = latest();
  async function scoreCase() {
    state.caseTried = true;
    const body = caseBody();
    const signal = caseSignal();
    $("score-button").setAttribute("aria-busy", "true");
    try {
      const [prediction, explanation] = await Promise.all([
        api("predict", { method: "POST", body, signal }),
        api("explain", { method: "POST", body, signal }),
      ]);
      clearError($("case-error"));
      renderCase(prediction, explanation.data, body);
    } catch (error) {
      if (isAbort(error)) return;
      $("case-result").hidden = true;
      $("case-summary").textContent = "";
      showError($("case-error"), error);
      markInvalidFields(error);
    } finally {
      if (!signal.aborted) $("score-button").removeAttribute("aria-busy");
    }
  }

  function markInvalidFields(error) {
    const detail = error instanceof ApiError && error.body && Array.isArray(error.body.detail) ? error.body.detail : [];
    for (const item of detail) {
      const loc = Array.isArray(item.loc) ? item.loc : [];
      const field = loc[0] === "body" ? document.getElementById(`score-${loc[1]}`) : null;
      if (field) field.setAttribute("aria-invalid", "true");
    }
  }

  function setWords(set) {
    if (!Array.isArray(set)) return String(set);
    if (set.length === 0) return "empty (no class)";
    return set.join(" and ");
  }

  function renderCase({ data: p, requestId }, explanation, body) {
    $("probability").textContent = String(p.probability);
    $("probability-rounded").textContent = isNumber(p.probability) ? `(about ${(p.probability * 100).toFixed(1)}%)` : "";
    $("class-threshold").textContent = String(p.threshold);
    $("class").textContent = String(p.class);
    $("set-confidence").textContent = String(p.confidence);
    $("prediction-set").textContent = setWords(p.prediction_set);
    $("prediction-set").dataset.set = JSON.stringify(p.prediction_set);
    $("set-meaning").textContent = Array.isArray(p.prediction_set) && p.prediction_set.length === 1
      ? "(a confident answer)"
      : "(refer it to a person)";
    $("model-version").textContent = String(p.model_version);
    $("request-id").textContent = requestId;

    const decision = $("decision");
    const reasons = $("reasons");
    reasons.replaceChildren();
    if ("decision" in p) {
      decision.hidden = false;
      decision.replaceChildren("Decision: ", el("strong", { id: "decision-value" }, String(p.decision)));
      decision.dataset.decision = String(p.decision);
      for (const reason of Array.isArray(p.reasons) ? p.reasons : []) {
        reasons.append(el("li", { "data-reason": String(reason) }, REASONS[reason] || String(reason)));
      }
    } else {
      decision.hidden = true;
      decision.replaceChildren();
    }
    reasons.hidden = reasons.childElementCount === 0;
    const atypical = $("atypical");
    atypical.hidden = p.atypical !== true;
    atypical.textContent = p.atypical === true
      ? "Warning: these scores are unlike the biopsies the model was trained on. Its answer may not apply."
      : "";

    renderWhy(explanation, body);
    const decided = "decision" in p ? `, decision ${p.decision}` : "";
    $("case-summary").textContent = `Probability of malignancy ${p.probability}: ${p.class} at the threshold ${p.threshold}${decided}.`;
    $("case-result").hidden = false;
  }

  function renderWhy(x, body) {
    const names = state.features.map((f) => f.name).filter((name) => isObject(x.contributions) && name in x.contributions);
    const sorted = names
      .map((name) => ({ name, value: x.contributions[name] }))
      .sort((a, b) => Math.abs(b.value) - Math.abs(a.value));
    $("why-text").textContent =
      `Each bar is how far one score moved this model's answer from the base value, ${x.base_value}, ` +
      `its mean answer over the ${x.background_rows} training biopsies, to this case's ${x.probability}: ` +
      "red towards malignant, blue towards benign. It explains what this model does with these scores; " +
      "it says nothing about what causes the disease.";
    const tbody = $("contributions").tBodies[0];
    tbody.replaceChildren(
      ...sorted.map(({ name, value }) =>
        el(
          "tr",
          { "data-feature": name },
          el("th", { scope: "row" }, words(name)),
          el("td", {}, String(body[name])),
          el("td", { class: "exact" }, String(value)),
        ),
      ),
    );
    drawWaterfall($("waterfall"), x, sorted, body);
  }

  function drawWaterfall(holder, x, sorted, body) {
    const rowH = 26;
    const left = 200;
    const width = 640;
    const right = width - 64;
    const rows = sorted.length + 2;
    const height = rows * rowH + 40;
    // The running positions, for drawing only: base value, then each contribution added.
    const ends = [];
    let running = Number(x.base_value);
    for (const item of sorted) {
      const start = running;
      running += Number(item.value);
      ends.push([start, running]);
    }
    const all = [0, 1, ...ends.flat()];
    const lo = Math.min(...all);
    const hi = Math.max(...all);
    const at = (v) => left + ((v - lo) / (hi - lo)) * (right - left);
    const chart = svg("svg", {
      viewBox: `0 0 ${width} ${height}`,
      role: "img",
      "aria-labelledby": "waterfall-title",
      class: "waterfall",
    });
    const top = sorted[0];
    chart.append(
      svg(
        "title",
        { id: "waterfall-title" },
        `Waterfall from the base value ${rounded(x.base_value)} to the probability ${rounded(x.probability)}` +
          (top ? `; ${words(top.name)} moved it most (${rounded(top.value)})` : ""),
      ),
    );
    for (const tick of [0, 0.25, 0.5, 0.75, 1]) {
      chart.append(svg("line", { x1: at(tick), x2: at(tick), y1: 4, y2: rows * rowH + 6, class: "grid" }));
      chart.append(svg("text", { x: at(tick), y: rows * rowH + 24, class: "tick", "text-anchor": "middle" }, String(tick)));
    }
    const threshold = Number(x.threshold);
    chart.append(svg("line", { x1: at(threshold), x2: at(threshold), y1: 4, y2: rows * rowH + 6, class: "threshold-line" }));
    chart.append(svg("text", { x: at(threshold) + 4, y: rows * rowH + 36, class: "tick" }, `threshold ${x.threshold}`));
    const rowText = (row, label) =>
      chart.append(svg("text", { x: left - 8, y: row * rowH + 18, "text-anchor": "end", class: "label" }, label));
    const marker = (row, value, label, cls) => {
      chart.append(svg("rect", { x: at(Number(value)) - 2, y: row * rowH + 4, width: 4, height: rowH - 8, class: cls }));
      chart.append(svg("text", { x: at(Number(value)) + 8, y: row * rowH + 18, class: "value" }, label));
    };
    rowText(0, "Base value");
    marker(0, x.base_value, rounded(x.base_value), "mark");
    sorted.forEach((item, i) => {
      const [start, end] = ends[i];
      const row = i + 1;
      const up = Number(item.value) >= 0;
      rowText(row, `${words(item.name)} = ${body[item.name]}`);
      const x0 = at(Math.min(start, end));
      chart.append(
        svg("rect", {
          x: x0,
          y: row * rowH + 5,
          width: Math.max(1, Math.abs(at(end) - at(start))),
          height: rowH - 10,
          class: up ? "bar-up" : "bar-down",
        }),
      );
      chart.append(svg("line", { x1: at(start), x2: at(start), y1: row * rowH - 5, y2: row * rowH + 5, class: "connector" }));
      const sign = up ? "+" : "";
      chart.append(svg("text", { x: Math.max(at(start), at(end)) + 6, y: row * rowH + 18, class: "value" }, `${sign}${rounded(item.value)}`));
    });
    rowText(rows - 1, "Probability");
    marker(rows - 1, x.probability, rounded(x.probability), "mark");
    holder.replaceChildren(chart);
  }

  // -- the threshold ---------------------------------------------------------------------------
  function setThreshold(text, source) {
    state.thresholdText = text;
    if (source !== "range") $("threshold-range").value = text;
    if (source !== "number") $("threshold-number").value = text;
    $("case-threshold").textContent = text;
    $("batch-threshold").textContent = text;
    for (const button of document.querySelectorAll("#mark-buttons button")) {
      button.setAttribute("aria-pressed", String(button.dataset.threshold === text));
    }
  }

  function buildMarks(defaultText) {
    const marks = [defaultText, ...ARTICLE_MARKS.filter((m) => m !== defaultText)];
    $("threshold-marks").replaceChildren(...marks.map((m) => el("option", { value: m })));
    $("mark-buttons").replaceChildren(
      ...marks.map((m) => {
        const label = m === defaultText ? `${m} (served default)` : m;
        const button = el("button", { type: "button", "data-threshold": m, "aria-pressed": "false" }, label);
        button.addEventListener("click", () => thresholdChanged(m, "button", true));
        return button;
      }),
    );
    return marks;
  }

  function thresholdChanged(text, source, now) {
    setThreshold(text, source);
    if (now) refreshForThreshold();
    else refreshSoon();
  }
  function refreshForThreshold() {
    loadMetrics();
    if (state.caseTried) scoreCase();
  }
  const refreshSoon = debounce(refreshForThreshold, DEBOUNCE_MS);

  const metricsSignal = latest();
  async function loadMetrics() {
    const signal = metricsSignal();
    try {
      const { data: m } = await api(`metrics?threshold=${encodeURIComponent(state.thresholdText)}`, { signal });
      clearError($("metrics-error"));
      renderMetrics(m);
      if (!state.markPoints) loadMarkPoints();
    } catch (error) {
      if (isAbort(error)) return;
      $("metrics-result").hidden = true;
      $("metrics-summary").textContent = "";
      showError($("metrics-error"), error);
    }
  }

  // The operating points at the marked thresholds, fetched once, for the ROC plot.
  async function loadMarkPoints() {
    state.markPoints = [];
    const marks = [...document.querySelectorAll("#mark-buttons button")].map((b) => b.dataset.threshold);
    try {
      const answers = await Promise.all(marks.map((t) => api(`metrics?threshold=${encodeURIComponent(t)}`)));
      state.markPoints = answers.map(({ data }, i) => ({ label: marks[i], metrics: data }));
      if (state.lastMetrics) drawRoc(state.lastMetrics);
    } catch {
      state.markPoints = null; // tried again with the next answer
    }
  }

  function renderMetrics(m) {
    state.lastMetrics = m;
    const c = isObject(m.confusion) ? m.confusion : {};
    for (const cell of ["tn", "fp", "fn", "tp"]) $(`cm-${cell}`).textContent = String(c[cell]);
    $("metrics-threshold").textContent = String(m.threshold);
    $("n-validation").textContent = String(m.n_validation);
    const ratio = (v) => (v === null || v === undefined ? "undefined (no rows in its denominator)" : String(v));
    $("sensitivity").textContent = ratio(m.sensitivity);
    $("specificity").textContent = ratio(m.specificity);
    $("accuracy").textContent = ratio(m.accuracy);
    $("metrics-summary").textContent =
      `At the threshold ${m.threshold}: sensitivity ${ratio(m.sensitivity)}, specificity ${ratio(m.specificity)}, accuracy ${ratio(m.accuracy)}.`;
    drawRoc(m);
    $("metrics-result").hidden = false;
  }

  // ROC space, zoomed to the corner the points lie in (a good model's all crowd the top left);
  // marks at the same point share one dot and one label.
  function drawRoc(m) {
    const size = 300;
    const pad = 44;
    const span = size - pad - 12;
    const fpr = (metrics) => 1 - metrics.specificity;
    const located = (metrics) => isNumber(metrics.sensitivity) && isNumber(metrics.specificity);
    const marks = (state.markPoints || []).filter((mark) => located(mark.metrics));
    const shown = [...marks.map((mark) => mark.metrics), ...(located(m) ? [m] : [])];
    const xMax = Math.min(1, Math.max(0.1, Math.ceil(Math.max(0, ...shown.map(fpr)) * 10 + 0.5) / 10));
    const yMin = Math.max(0, Math.min(0.9, Math.floor(Math.min(1, ...shown.map((p) => Number(p.sensitivity))) * 10 - 0.5) / 10));
    const px = (x) => pad + (x / xMax) * span;
    const py = (y) => 12 + ((1 - y) / (1 - yMin)) * span;
    const chart = svg("svg", { viewBox: `0 0 ${size} ${size}`, role: "img", "aria-labelledby": "roc-title", class: "roc" });
    chart.append(
      svg("title", { id: "roc-title" }, `Operating point at the threshold ${m.threshold}: sensitivity ${rounded(m.sensitivity)}, specificity ${rounded(m.specificity)}`),
    );
    chart.append(svg("rect", { x: px(0), y: py(1), width: span, height: span, class: "frame" }));
    if (xMax === 1 && yMin === 0) chart.append(svg("line", { x1: px(0), y1: py(0), x2: px(1), y2: py(1), class: "chance" }));
    for (const [value, label] of [[0, "0"], [xMax / 2, String(xMax / 2)], [xMax, String(xMax)]]) {
      chart.append(svg("text", { x: px(value), y: size - 22, "text-anchor": "middle", class: "tick" }, label));
    }
    for (const value of [yMin, (1 + yMin) / 2, 1]) {
      chart.append(svg("text", { x: pad - 6, y: py(value) + 4, "text-anchor": "end", class: "tick" }, String(Math.round(value * 100) / 100)));
    }
    chart.append(svg("text", { x: pad + span / 2, y: size - 4, "text-anchor": "middle", class: "label" }, "1 - specificity (benign called malignant)"));
    chart.append(svg("text", { x: 12, y: 12 + span / 2, "text-anchor": "middle", class: "label", transform: `rotate(-90 12 ${12 + span / 2})` }, "sensitivity (malignant found)"));
    const groups = new Map();
    for (const mark of marks) {
      const key = `${mark.metrics.sensitivity}|${mark.metrics.specificity}`;
      if (!groups.has(key)) groups.set(key, { metrics: mark.metrics, labels: [] });
      groups.get(key).labels.push(mark.label);
    }
    for (const { metrics, labels } of groups.values()) {
      const x = px(fpr(metrics));
      const y = py(Number(metrics.sensitivity));
      chart.append(svg("circle", { cx: x, cy: y, r: 3.5, class: "mark-point" }));
      const anchor = x > pad + span * 0.6 ? "end" : "start";
      chart.append(svg("text", { x: anchor === "end" ? x - 6 : x + 6, y: y + 14, "text-anchor": anchor, class: "tick" }, labels.join(", ")));
    }
    if (located(m)) chart.append(svg("circle", { cx: px(fpr(m)), cy: py(Number(m.sensitivity)), r: 7, class: "operating-point" }));
    $("roc").replaceChildren(chart);
    const auc = m.roc_auc === null || m.roc_auc === undefined ? "" : ` The area under the whole curve is ${m.roc_auc}.`;
    const zoom = xMax < 1 || yMin > 0 ? ", zoomed to the corner where they lie" : "";
    $("roc-caption").textContent =
      "The service does not serve the ROC curve's points, so this plot shows the operating point at the chosen " +
      "threshold (the large dot) and at the marked thresholds (the small ones, labelled) on sensitivity against " +
      `1 - specificity${zoom}.${auc}`;
  }

  // -- how it is doing -------------------------------------------------------------------------
  const isEstimate = (v) => isObject(v) && "value" in v && ("lower" in v || "upper" in v);
  function scalarText(v) {
    if (v === null || v === undefined) return "not defined";
    if (isEstimate(v)) {
      const interval = v.lower === null || v.upper === null ? "no interval" : `95% interval ${v.lower} to ${v.upper}`;
      return `${scalarText(v.value)} (${interval})`;
    }
    if (typeof v === "boolean") return v ? "yes" : "no";
    if (Array.isArray(v)) return v.map(scalarText).join(", ") || "none";
    return String(v);
  }
  const isScalar = (v) => !isObject(v) || isEstimate(v);

  // Objects of plain figures side by side in one table (live beside validated, say); any other
  // object of objects a table of its own (the longer key list down the side); plain figures a
  // list of terms; anything deeper, sections.
  const isFlat = (v) => isObject(v) && !isEstimate(v) && Object.values(v).every(isScalar);
  function renderJson(value, depth) {
    const out = document.createDocumentFragment();
    const entries = Object.entries(value);
    const scalars = entries.filter(([, v]) => isScalar(v));
    const flat = entries.filter(([, v]) => isFlat(v));
    const side = flat.length >= 2 ? Object.fromEntries(flat) : {};
    const nested = entries.filter(([k, v]) => !isScalar(v) && !(k in side));
    if (scalars.length) {
      out.append(el("dl", { class: "facts compact" }, ...scalars.map(([k, v]) =>
        el("div", { "data-key": k }, el("dt", {}, words(k)), el("dd", {}, scalarText(v))))));
    }
    if (flat.length >= 2) out.append(el("section", { class: "block" }, table(side)));
    for (const [k, v] of nested) {
      const heading = el(`h${Math.min(depth + 2, 6)}`, {}, words(k));
      const inner = Object.values(v);
      const tabular = inner.length > 0 && inner.every(isFlat);
      out.append(el("section", { class: "block", "data-key": k }, heading, tabular ? table(v, k) : renderJson(v, depth + 1)));
    }
    return out;
  }

  function table(value, label = "figures") {
    const outer = Object.keys(value);
    const inner = [...new Set(outer.flatMap((k) => Object.keys(value[k])))];
    const transpose = inner.length > outer.length;
    const rows = transpose ? inner : outer;
    const cols = transpose ? outer : inner;
    const cell = (r, c) => (transpose ? value[c][r] : value[r][c]);
    return el(
      "div",
      // A region that may scroll must be reachable by keyboard (and named for screen readers).
      { class: "table-scroll", tabindex: "0", role: "region", "aria-label": words(label) },
      el(
        "table",
        { class: "numbers" },
        el("thead", {}, el("tr", {}, el("td"), ...cols.map((c) => el("th", { scope: "col" }, words(c))))),
        el("tbody", {}, ...rows.map((r) => el("tr", { "data-key": r }, el("th", { scope: "row" }, words(r)),
          ...cols.map((c) => el("td", {}, scalarText(cell(r, c))))))),
      ),
    );
  }

  // "No confirmed case yet": this service's answer counts them in `cases`; another's may give
  // counts deeper down, searched breadth first, never in `validated` (the figures the model was
  // validated with, which always have cases).
  function noConfirmedCases(data) {
    if (isObject(data) && "cases" in data) return Number(data.cases) === 0;
    const queue = [data];
    while (queue.length) {
      const node = queue.shift();
      if ("n_confirmed" in node) return Number(node.n_confirmed) === 0;
      if ("n_benign" in node && "n_malignant" in node) return Number(node.n_benign) === 0 && Number(node.n_malignant) === 0;
      for (const [key, child] of Object.entries(node)) if (key !== "validated" && isObject(child)) queue.push(child);
    }
    return false;
  }

  const monitoringSignal = latest();
  async function loadMonitoring() {
    const signal = monitoringSignal();
    const result = $("monitoring-result");
    result.textContent = "Loading…";
    try {
      const { data } = await api("monitoring", { signal });
      clearError($("monitoring-error"));
      const empty = noConfirmedCases(data);
      result.replaceChildren(
        ...(empty ? [el("p", { class: "empty", id: "monitoring-empty" }, "No outcome has been confirmed yet, so there is nothing to measure the answers against. What needs no outcome is below.")] : []),
        renderJson(data, 0),
      );
      $("monitoring-howto").hidden = !empty;
    } catch (error) {
      if (isAbort(error)) return;
      if (error instanceof ApiError && error.status === 404) {
        result.replaceChildren(el("p", { class: "empty", id: "monitoring-empty" },
          "This service does not measure its answers against outcomes yet (it has no monitoring route), so there is nothing to show here."));
        clearError($("monitoring-error"));
        $("monitoring-howto").hidden = false;
        return;
      }
      result.replaceChildren();
      showError($("monitoring-error"), error);
    }
  }

  // -- many cases ------------------------------------------------------------------------------
  function splitCsvLine(line) {
    return line.split(",").map((field) => {
      const trimmed = field.trim();
      return trimmed.length >= 2 && trimmed.startsWith('"') && trimmed.endsWith('"') ? trimmed.slice(1, -1).trim() : trimmed;
    });
  }

  // Every line is either sent or named with its reason; blank lines are counted.
  function parseCsv(text, features) {
    const names = features.map((f) => f.name);
    const lines = text.replace(/^\uFEFF/, "").split(/\r\n|\n|\r/);
    if (lines.length && lines[lines.length - 1] === "") lines.pop();
    const header = splitCsvLine(lines[0] || "");
    const unknown = header.filter((h) => !names.includes(h));
    const missing = names.filter((n) => !header.includes(n));
    const repeated = header.filter((h, i) => header.indexOf(h) !== i);
    if (unknown.length || missing.length || repeated.length) {
      const parts = [];
      if (unknown.length) parts.push(`unknown column ${unknown.map((u) => `"${u}"`).join(", ")}`);
      if (missing.length) parts.push(`missing column ${missing.join(", ")}`);
      if (repeated.length) parts.push(`repeated column ${repeated.join(", ")}`);
      return { fileError: `Line 1, the header, must name the nine columns: ${parts.join("; ")}.` };
    }
    const rows = [];
    const problems = [];
    let blank = 0;
    lines.slice(1).forEach((line, index) => {
      const number = index + 2;
      if (line.trim() === "") {
        blank += 1;
        return;
      }
      const fields = splitCsvLine(line);
      if (fields.length !== header.length) {
        problems.push({ line: number, reason: `has ${fields.length} values; the header names ${header.length}` });
        return;
      }
      const scores = {};
      const reasons = [];
      header.forEach((name, i) => {
        const feature = features.find((f) => f.name === name);
        const raw = fields[i];
        if (raw === "") reasons.push(`${name} is empty`);
        else if (!/^[0-9]+$/.test(raw)) reasons.push(`${name} is "${raw}", not a whole number`);
        else if (Number(raw) < feature.min || Number(raw) > feature.max) reasons.push(`${name} is ${raw}, outside ${feature.min} to ${feature.max}`);
        else scores[name] = Number(raw);
      });
      if (reasons.length) problems.push({ line: number, reason: reasons.join("; ") });
      else rows.push({ line: number, scores });
    });
    return { rows, problems, blank };
  }

  async function scoreFile(file) {
    const status = $("batch-status");
    clearError($("batch-error"));
    $("batch-result").hidden = true;
    $("batch-problems").hidden = true;
    const parsed = parseCsv(await file.text(), state.features);
    if (parsed.fileError) {
      status.textContent = "";
      showError($("batch-error"), new ApiError(parsed.fileError, 0));
      return;
    }
    const { rows, problems, blank } = parsed;
    $("problem-list").replaceChildren(...problems.map((p) => el("li", { "data-line": String(p.line) }, `Line ${p.line}: ${p.reason}.`)));
    $("batch-problems").hidden = problems.length === 0;
    const skipped = blank ? ` ${blank} blank line${blank === 1 ? "" : "s"} skipped.` : "";
    const notSent = problems.length ? ` ${problems.length} line${problems.length === 1 ? "" : "s"} not sent (listed below).` : "";
    if (!rows.length) {
      status.textContent = `No line to score.${notSent}${skipped}`;
      return;
    }
    const size = Math.max(1, Number(config.max_batch_size) || 1000);
    const threshold = jsonValue(state.thresholdText);
    const answers = [];
    for (let start = 0; start < rows.length; start += size) {
      const chunk = rows.slice(start, start + size);
      status.textContent = `Scoring lines: ${start} of ${rows.length} done…`;
      try {
        const { data } = await api("predict/batch", {
          method: "POST",
          body: { instances: chunk.map((r) => r.scores), threshold },
        });
        const predictions = Array.isArray(data.predictions) ? data.predictions : [];
        chunk.forEach((row, i) => answers.push({ row, answer: predictions[i] || {}, batch: data }));
      } catch (error) {
        const which = `lines ${chunk[0].line} to ${chunk[chunk.length - 1].line}`;
        const size422 = error instanceof ApiError && error.status === 422 && /instances/.test(error.message)
          ? ` The service refused a batch of ${chunk.length} rows; its limit may be lower than the ${size} this page was told.`
          : "";
        const said = error instanceof ApiError ? error.message.replace(/\.$/, "") : String(error);
        showError($("batch-error"), new ApiError(`The ${which} and any after them were not scored: ${said}.${size422}`, 0));
        break;
      }
    }
    status.textContent = `Scored ${answers.length} of ${rows.length} lines sent.${notSent}${skipped}`;
    if (answers.length) renderBatch(answers);
  }

  function batchColumns(answers) {
    const has = (key) => answers.some(({ answer }) => key in answer);
    return ["probability", "class", "prediction_set", ...["decision", "reasons", "atypical"].filter(has)];
  }
  const answerText = (v) => (Array.isArray(v) ? v.join("|") : v === undefined || v === null ? "" : String(v));

  function renderBatch(answers) {
    const columns = batchColumns(answers);
    const table = $("batch-table");
    table.tHead.replaceChildren(el("tr", {}, el("th", { scope: "col" }, "Line"), ...columns.map((c) => el("th", { scope: "col" }, words(c)))));
    const body = document.createDocumentFragment();
    for (const { row, answer } of answers) {
      body.append(el("tr", { "data-line": String(row.line) }, el("th", { scope: "row" }, String(row.line)),
        ...columns.map((c) => el("td", { "data-column": c }, answerText(answer[c])))));
    }
    table.tBodies[0].replaceChildren(body);
    const names = state.features.map((f) => f.name);
    const head = ["line", ...names, ...columns, "threshold", "confidence", "model_version"];
    const lines = [head.join(",")];
    for (const { row, answer, batch } of answers) {
      const cells = [row.line, ...names.map((n) => row.scores[n]), ...columns.map((c) => answerText(answer[c])),
        answerText(batch.threshold), answerText(batch.confidence), answerText(batch.model_version)];
      lines.push(cells.map((cell) => csvCell(String(cell))).join(","));
    }
    setDownload($("batch-download"), `${lines.join("\r\n")}\r\n`);
    $("batch-result").hidden = false;
  }
  const csvCell = (text) => (/[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text);

  const downloads = new Map();
  function setDownload(link, text) {
    if (downloads.has(link)) URL.revokeObjectURL(downloads.get(link));
    const url = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
    downloads.set(link, url);
    link.href = url;
  }

  // -- start -----------------------------------------------------------------------------------
  function wireKey() {
    const input = $("api-key");
    input.value = storedKey();
    const apply = () => {
      if (input.value === storedKey()) return;
      try {
        if (input.value) sessionStorage.setItem(KEY_STORAGE, input.value);
        else sessionStorage.removeItem(KEY_STORAGE);
      } catch {
        // no session storage (a privacy setting): the key cannot be kept, so it is not sent
      }
      if (!state.card) return;
      state.markPoints = null;
      loadMetrics();
      if (state.caseTried) scoreCase();
      if (!$("view-monitoring").hidden) loadMonitoring();
    };
    input.addEventListener("change", apply);
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      apply();
    });
  }

  function wire(card) {
    const defaultText = String(card.default_threshold);
    buildScores(state.features);
    const examples = Array.isArray(config.examples) ? config.examples : [];
    $("example-buttons").replaceChildren(
      ...examples.map((example) => {
        const button = el("button", { type: "button", class: "secondary", "data-example": example.name }, example.label);
        button.addEventListener("click", () => {
          setScores(example.scores);
          scoreCase();
        });
        return button;
      }),
    );
    if (examples.length) setScores(examples[0].scores);
    $("case-form").addEventListener("submit", (event) => {
      event.preventDefault();
      scoreCase();
    });
    buildMarks(defaultText);
    setThreshold(defaultText);
    $("threshold-range").addEventListener("input", (e) => thresholdChanged(e.target.value, "range", false));
    $("threshold-number").addEventListener("input", (e) => {
      if (e.target.value !== "") thresholdChanged(e.target.value, "number", false);
    });
    $("monitoring-refresh").addEventListener("click", loadMonitoring);
    const names = state.features.map((f) => f.name);
    $("csv-columns").textContent = names.join(",");
    const template = [names.join(","), ...examples.map((e) => names.map((n) => e.scores[n]).join(","))];
    setDownload($("csv-template"), `${template.join("\r\n")}\r\n`);
    $("csv-file").addEventListener("change", (e) => {
      const file = e.target.files && e.target.files[0];
      if (file) scoreFile(file);
    });
    $("footer-version").textContent = String(card.model_version);
    $("footer-data").textContent = isObject(card.data) ? `Trained on ${card.data.name}.` : "";
  }

  async function start() {
    wireKey();
    window.addEventListener("hashchange", () => showView(true));
    showView(false);
    try {
      const { data: card } = await api("model");
      state.card = card;
      state.features = Array.isArray(card.features) ? card.features : [];
      wire(card);
    } catch (error) {
      showError($("load-error"), error);
      return;
    }
    document.body.dataset.ready = "true";
    loadMetrics();
    scoreCase();
  }

  start();
})();
