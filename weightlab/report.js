// weightlab report: draws the page from the JSON that weightlab/report.py computed.
// Every number comes from Python; this file only lays it out with Plotly (inlined above).
(function () {
  "use strict";

  const D = JSON.parse(document.getElementById("weightlab-data").textContent);
  const app = document.getElementById("app");
  const RUN = {};
  D.runs.forEach((r) => (RUN[r.id] = r));
  const CONFIG = { displaylogo: false, responsive: true };
  const STAT_NAMES = {
    l2: "L2 norm |W|",
    mean: "mean",
    std: "standard deviation",
    dist_init: "distance from the initial weights |W − W₀|",
  };

  // ---- small helpers -------------------------------------------------------------------------

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (v === undefined || v === null || v === false) return;
      if (k === "text") node.textContent = v;
      else if (k === "html") node.innerHTML = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    });
    (children || []).forEach((c) => c && node.appendChild(typeof c === "string" ? document.createTextNode(c) : c));
    return node;
  }

  function fmt(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return "–";
    if (typeof v !== "number") return String(v);
    if (Number.isInteger(v) && Math.abs(v) < 1e6) return String(v);
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(2);
    return String(+v.toPrecision(4));
  }

  function meanStd(s) {
    if (!s || s.mean === null) return "–";
    const spread = s.std === null ? "" : ` ± ${fmt(s.std)}`;
    return `${fmt(s.mean)}${spread} (n=${s.n})`;
  }

  function ci(c) {
    return c ? `[${fmt(c[0])}, ${fmt(c[1])}]` : "–";
  }

  function section(id, title, intro) {
    const s = el("section", { id: id }, [el("h2", { text: title })]);
    if (intro) s.appendChild(el("p", { class: "intro", html: intro }));
    app.appendChild(s);
    return s;
  }

  function chart(name, cls) {
    return el("div", { class: "chart " + (cls || ""), "data-chart": name });
  }

  function note(text, cls) {
    return el("p", { class: "note " + (cls || ""), text: text });
  }

  function table(columns, rows) {
    const head = el("tr", {}, columns.map((c) => el("th", { text: c.title })));
    const body = rows.map((row) =>
      el("tr", {}, columns.map((c) => {
        const v = c.value(row);
        return v instanceof Node ? el("td", {}, [v]) : el("td", { text: v, class: c.cls });
      }))
    );
    return el("div", { class: "table-wrap" }, [el("table", {}, [el("thead", {}, [head]), el("tbody", {}, body)])]);
  }

  function swatch(run) {
    return el("span", { class: "swatch", style: `background:${run.colour}`, title: run.id });
  }

  // The runs' colours, for the charts that leave out their legend to stay small.
  // With seeds: one entry per group (its seeds are shades of the group's colour).
  function legendStrip(runs) {
    runs = runs || D.runs;
    if (D.loss.seeds) {
      const groups = [...new Set(runs.map((r) => r.group))];
      return el("div", { class: "legend" }, groups.map((g) => {
        const n = runs.filter((r) => r.group === g).length;
        const label = `${D.verdicts.groups[g].group} (${n} seed${n === 1 ? "" : "s"}${n > 1 ? ", a shade each" : ""})`;
        return el("span", { class: "legend-item" }, [swatch({ colour: groupColour(g), id: label }), " " + label]);
      }));
    }
    return el("div", { class: "legend" }, runs.map((r) =>
      el("span", { class: "legend-item", title: r.id }, [swatch(r), " " + r.name])));
  }

  function layout(extra) {
    return Object.assign(
      {
        margin: { l: 60, r: 20, t: 36, b: 48 },
        font: { family: "system-ui, sans-serif", size: 12 },
        hovermode: "closest",
        paper_bgcolor: "white",
        plot_bgcolor: "#fafafa",
        legend: { orientation: "h", x: 0, y: -0.3, yanchor: "top" },
      },
      extra
    );
  }

  function draw(div, traces, lay) {
    Plotly.react(div, traces, layout(lay), CONFIG);
  }

  function emptyChart(div, text, title) {
    draw(div, [], {
      title: { text: title || "", font: { size: 13 } },
      xaxis: { visible: false },
      yaxis: { visible: false },
      annotations: [{ text: text, showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5, font: { size: 13, color: "#666" } }],
    });
  }

  function download(name, text, type) {
    const a = el("a", { download: name });
    a.href = URL.createObjectURL(new Blob([text], { type: type }));
    document.body.appendChild(a);
    a.click();
    a.remove();
  }

  function csv(rows) {
    const cols = [];
    rows.forEach((r) => Object.keys(r).forEach((k) => cols.includes(k) || cols.push(k)));
    const cell = (v) => {
      const s = v === null || v === undefined ? "" : String(v);
      return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
    };
    return [cols.join(","), ...rows.map((r) => cols.map((c) => cell(r[c])).join(","))].join("\n") + "\n";
  }

  const maxEpoch = Math.max(
    0,
    ...Object.values(D.histograms).flatMap((h) => Object.values(h.runs).map((r) => r.counts.length - 1)),
    ...(D.dot ? [D.dot.epochs[D.dot.epochs.length - 1]] : [])
  );
  let epoch = maxEpoch;
  const onEpoch = [];

  // ---- header --------------------------------------------------------------------------------

  function header() {
    const h = el("header", {}, [
      el("h1", { text: `weightlab report: ${D.title}` }),
      el("p", {
        class: "intro",
        html:
          "What training did to the <b>weights</b> and <b>biases</b> of these runs, epoch by epoch. " +
          "Each run keeps one colour in every chart (the swatches below). Hover a chart for exact " +
          "values; drag to zoom, double-click to reset.",
      }),
      el("p", { class: "meta", text: `Selection: ${D.selection.join(" ")} · store ${D.store} · ${D.runs.length} runs` }),
    ]);
    const nav = el("nav", {}, [
      ["verdicts", "Verdicts"], ["loss", "Loss"], ["pairs", "Pairs"], ["weights", "Weights"],
      ["biases", "Biases"], ["distributions", "Distributions"], ["dot", "Dot product"], ["tables", "Tables"],
    ].map(([id, t]) => el("a", { href: "#" + id, text: t })));
    h.appendChild(nav);
    app.appendChild(h);

    const s = section("runs", "Runs and the settings that differ", D.keys.length
      ? "Only the config keys whose values differ between the runs are shown."
      : "The runs share every config key.");
    const cols = [
      { title: "", value: (r) => swatch(r) },
      { title: "run", value: (r) => r.name },
      { title: "id", value: (r) => r.id, cls: "mono" },
      ...D.keys.map((k) => ({ title: k, value: (r) => r.settings[k], cls: "mono" })),
      { title: "status", value: (r) => r.status + (r.diverged_at_epoch !== null ? ` at epoch ${r.diverged_at_epoch}` : "") },
      { title: "epochs", value: (r) => fmt(r.epochs) },
      { title: "snapshots", value: (r) => (r.snapshot_epochs ? fmt(r.snapshot_epochs) : "none") },
    ];
    const runsTable = table(cols, D.runs);
    runsTable.classList.add("tall");
    s.appendChild(runsTable);
    if (D.notes.length) {
      s.appendChild(el("div", { class: "missing" }, [
        el("b", { text: "Missing from this page:" }),
        el("ul", {}, D.notes.map((n) => el("li", { text: n }))),
      ]));
    }
  }

  // ---- verdicts ------------------------------------------------------------------------------

  function verdicts() {
    const s = section("verdicts", "Verdicts",
      "What <code>weightlab compare</code> concludes. A <b>pair</b> is two settings that differ only in " +
      `<code>${D.by || "one key"}</code>, seed by seed; <b>mean ± std (n)</b> is the final training loss ` +
      "over the seeds that finished, <b>95% CI</b> the confidence interval of that mean, <b>Welch p</b> " +
      "the t-test of the two sides (below 0.05: unlikely to be chance), and the <b>divergence epoch</b> " +
      `the first epoch their losses are more than ${Math.round(D.threshold * 100)}% apart.`);
    const pv = D.verdicts.pairs;
    if (pv.length) {
      s.appendChild(table([
        { title: "verdict", value: (p) => p.verdict },
        { title: p0(pv, "a"), value: (p) => meanStd(p.a_stats) },
        { title: "95% CI", value: (p) => ci(p.a_stats.ci95) },
        { title: p0(pv, "b"), value: (p) => meanStd(p.b_stats) },
        { title: "95% CI ", value: (p) => ci(p.b_stats.ci95) },
        { title: "Welch p", value: (p) => fmt(p.p_value) },
        { title: "divergence epoch", value: (p) => fmt(p.divergence_epoch) },
      ], pv));
    }
    const groups = D.verdicts.groups.filter((g) => g.n > 1);
    if (groups.length) {
      s.appendChild(el("h3", { text: "Seed groups: runs that differ only by seed" }));
      s.appendChild(table([
        { title: "group", value: (g) => g.group },
        { title: "final loss, mean ± std (n)", value: (g) => meanStd({ mean: g.mean, std: g.std, n: g.finished }) },
        { title: "95% CI", value: (g) => ci(g.ci95_low === null ? null : [g.ci95_low, g.ci95_high]) },
        { title: "diverged", value: (g) => fmt(g.diverged) },
        { title: "note", value: (g) => g.note },
      ], groups));
    }
    if (D.findings.length) {
      s.appendChild(el("ul", { class: "findings" }, D.findings.map((f) => el("li", { text: f }))));
    }
  }

  function p0(pairs, side) {
    const labels = [...new Set(pairs.map((p) => p[side]))];
    return labels.length === 1 ? labels[0] : side === "a" ? "reference" : "other";
  }

  // ---- loss curves ---------------------------------------------------------------------------

  function loss() {
    const s = section("loss", "Loss curves",
      "The loss after each epoch, on the training data and on the held-out validation data. " +
      (D.loss.seeds
        ? "With several seeds of one setting, the thick line is their mean and the band their spread; " +
          "the faint lines are the single seeds. <b>n</b> counts the seeds that finished."
        : "One line per run."));
    const controls = el("div", { class: "controls" });
    let bandKind = "std";
    let logY = false;
    if (D.loss.seeds) {
      const select = el("select", { id: "band-kind", onchange: (e) => { bandKind = e.target.value; redraw(); } }, [
        el("option", { value: "std", text: "band: mean ± standard deviation" }),
        el("option", { value: "ci", text: "band: 95% confidence interval of the mean" }),
      ]);
      controls.appendChild(el("label", {}, [select]));
    }
    const log = el("input", { type: "checkbox", id: "log-y", onchange: (e) => { logY = e.target.checked; redraw(); } });
    controls.appendChild(el("label", {}, [log, " logarithmic y axis"]));
    s.appendChild(controls);
    const grid = el("div", { class: "grid two" });
    const divs = { loss: chart("loss-train"), val_loss: chart("loss-val") };
    grid.appendChild(divs.loss);
    grid.appendChild(divs.val_loss);
    s.appendChild(grid);

    function traces(metric) {
      const out = [];
      const banded = new Set();
      D.loss.bands.forEach((b) => {
        const band = b[metric];
        if (!band.epochs.length || band.mean.every((v) => v === null)) return;
        const first = D.runs.find((r) => r.group === b.group);
        const colour = first ? groupColour(b.group) : "#888";
        const lo = bandKind === "std" ? band.std_low : band.ci_low;
        const hi = bandKind === "std" ? band.std_high : band.ci_high;
        const name = `${b.label} (n=${b.n})`;
        out.push({ x: band.epochs, y: lo, mode: "lines", line: { width: 0 }, hoverinfo: "skip", showlegend: false, legendgroup: name });
        out.push({ x: band.epochs, y: hi, mode: "lines", line: { width: 0 }, fill: "tonexty", fillcolor: hexA(colour, 0.22), hoverinfo: "skip", showlegend: false, legendgroup: name });
        out.push({ x: band.epochs, y: band.mean, mode: "lines", name: name, legendgroup: name, line: { color: colour, width: 3 },
          hovertemplate: `${name}<br>epoch %{x}: mean %{y:.4g}<extra></extra>` });
        D.runs.filter((r) => r.group === b.group).forEach((r) => banded.add(r.id));
      });
      D.runs.forEach((r) => {
        const c = D.loss.runs[r.id];
        if (!c || !c[metric].some((v) => v !== null)) return;
        const faint = banded.has(r.id);
        out.push({
          x: c.epochs, y: c[metric], mode: "lines", name: r.name, legendgroup: faint ? undefined : r.id,
          showlegend: !faint, opacity: faint ? 0.35 : 1, line: { color: r.colour, width: faint ? 1 : 2 },
          hovertemplate: `${r.name}<br>epoch %{x}: %{y:.4g}<extra></extra>`,
        });
      });
      return out;
    }

    function redraw() {
      [["loss", "training loss"], ["val_loss", "validation loss"]].forEach(([metric, title]) => {
        const t = traces(metric);
        if (!t.length) {
          emptyChart(divs[metric], metric === "val_loss"
            ? "no validation loss recorded (data.validation_split: 0?)"
            : "no loss recorded", title);
          return;
        }
        draw(divs[metric], t, {
          title: { text: title, font: { size: 14 } },
          xaxis: { title: { text: "epoch" } },
          yaxis: { title: { text: "loss" }, type: logY ? "log" : "linear" },
        });
      });
    }
    redraw();
  }

  // A bias variable that the run's layer was built without (use_bias: false).
  function noBias(run, variable) {
    const [layer, kind] = variable.split("/");
    return kind === "bias" && run.use_bias[layer] === false;
  }

  function groupColour(index) {
    const members = D.runs.filter((r) => r.group === index);
    return members.length ? members[Math.floor(members.length / 2)].colour : "#888888";
  }

  function hexA(hex, alpha) {
    const n = parseInt(hex.slice(1), 16);
    return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${alpha})`;
  }

  // ---- pairs ---------------------------------------------------------------------------------

  function pairs() {
    const s = section("pairs", "Pairs: how far apart the weights of two settings move",
      "For each pair of runs (same seed, one setting changed): the <b>relative distance</b> |W<sub>a</sub> − " +
      "W<sub>b</sub>| / max(|W<sub>a</sub>|, |W<sub>b</sub>|) of all their weights, 0 when identical, and " +
      "the <b>cosine</b> of the angle between them, 1 when they point the same way. Only the variables " +
      "both runs have count (a run without biases is compared on its kernels). A dashed line marks the " +
      "epoch where the pair's losses came apart.");
    if (!D.pairs.length) {
      const why = D.findings.find((f) => f.startsWith("no pairs") || f.startsWith("one run")) ||
        "no two runs differ in exactly one setting";
      s.appendChild(note(`No pairs: ${why}`));
      return;
    }
    D.pairs.forEach((p, i) => {
      const vars = [...new Set(p.seeds.flatMap((sd) => (sd.weights ? sd.weights.variables : [])))];
      s.appendChild(el("h3", { text: p.label }));
      let variable = "all";
      const select = el("select", { onchange: (e) => { variable = e.target.value; redraw(); } }, [
        el("option", { value: "all", text: "all shared variables" }),
        ...vars.map((v) => el("option", { value: v, text: v })),
      ]);
      s.appendChild(el("div", { class: "controls" }, [el("label", {}, ["variables: ", select])]));
      if (!vars.length) s.appendChild(note("these runs have no snapshots to compare (or no variable in common)"));
      const grid = el("div", { class: "grid two" });
      const dist = chart(`pair-${i}-distance`);
      const cos = chart(`pair-${i}-cosine`);
      grid.appendChild(dist);
      grid.appendChild(cos);
      s.appendChild(grid);

      function redraw() {
        [[dist, "distance", "relative weight distance"], [cos, "cosine", "cosine similarity"]].forEach(([div, key, title]) => {
          const traces = [];
          const shapes = [];
          const notes = [];
          const apart = {};
          p.seeds.forEach((sd) => {
            if (!sd.weights) return;
            const src = variable === "all" ? sd.weights : sd.weights.per_variable[variable];
            if (!src) return;
            const run = RUN[sd.b];
            traces.push({
              x: sd.weights.epochs, y: src[key], mode: "lines", name: `seed ${sd.seed}`,
              line: { color: run.colour, width: 2 },
              hovertemplate: `seed ${sd.seed}<br>epoch %{x}: %{y:.4g}<extra></extra>`,
            });
            if (sd.divergence_epoch !== null) (apart[sd.divergence_epoch] = apart[sd.divergence_epoch] || []).push(sd.seed);
          });
          // One labelled line per epoch at which seeds came apart (seeds at the same epoch share it).
          Object.entries(apart).forEach(([e, seedsAt], k) => {
            const who = seedsAt.length === 1 ? `seed ${seedsAt[0]}` : seedsAt.length <= 3 ? `seeds ${seedsAt.join(", ")}` : `${seedsAt.length} seeds`;
            shapes.push({ type: "line", xref: "x", yref: "paper", x0: +e, x1: +e, y0: 0, y1: 1, line: { color: "#555", width: 1.2, dash: "dash" } });
            notes.push({ x: +e, y: 1 - (k % 5) * 0.08, xref: "x", yref: "paper", showarrow: false, xanchor: "left",
              text: ` ${who}: losses apart at epoch ${e}`, font: { size: 10, color: "#333" }, bgcolor: "rgba(255,255,255,0.7)" });
          });
          if (!traces.length) { emptyChart(div, "no snapshots to compare", title); return; }
          draw(div, traces, {
            title: { text: title, font: { size: 14 } }, shapes: shapes, annotations: notes,
            xaxis: { title: { text: "epoch (0 = initial weights)" } }, yaxis: { title: { text: key } },
            showlegend: traces.length > 1 && traces.length <= 8,
          });
        });
      }
      redraw();
    });
  }

  // ---- weights -------------------------------------------------------------------------------

  function weights() {
    const s = section("weights", "Weights: one chart per variable",
      "Each layer has a <b>kernel</b> (its weight matrix) and usually a <b>bias</b> vector. Pick what to " +
      "follow over the epochs; the x axes are linked, so zooming one zooms all.");
    const vars = D.weights.variables;
    if (!vars.length) { s.appendChild(note("no run recorded weight statistics")); return; }
    let stat = "l2";
    const select = el("select", { id: "weight-stat", onchange: (e) => { stat = e.target.value; redraw(); } },
      D.weights.stats.map((k) => el("option", { value: k, text: STAT_NAMES[k] || k })));
    s.appendChild(el("div", { class: "controls" }, [el("label", {}, ["show: ", select])]));
    s.appendChild(legendStrip());
    const grid = el("div", { class: "grid three" });
    const divs = vars.map((v) => chart("weights-" + v, "small"));
    divs.forEach((d) => grid.appendChild(d));
    s.appendChild(grid);

    function redraw() {
      vars.forEach((v, i) => {
        const traces = [];
        D.runs.forEach((r) => {
          const w = D.weights.runs[r.id];
          if (!w || !w.variables[v]) return;
          traces.push({ x: w.epochs, y: w.variables[v][stat], mode: "lines", name: r.name, line: { color: r.colour, width: 1.5 },
            hovertemplate: `${r.name}<br>epoch %{x}: %{y:.4g}<extra></extra>` });
        });
        const missing = D.runs.filter((r) => !(D.weights.runs[r.id] && D.weights.runs[r.id].variables[v]));
        const free = missing.filter((r) => noBias(r, v)).length;
        const why = free === missing.length ? " have no bias (use_bias: false)" : " lack it";
        const annotations = missing.length && traces.length
          ? [{ text: `${missing.length} run${missing.length === 1 ? "" : "s"}${why}`, showarrow: false, xref: "paper", yref: "paper", x: 1, y: 1.08, xanchor: "right", font: { size: 10, color: "#777" } }]
          : [];
        if (!traces.length) { emptyChart(divs[i], "no run has this variable", v); return; }
        draw(divs[i], traces, {
          title: { text: v, font: { size: 13 } }, showlegend: false, annotations: annotations,
          margin: { l: 50, r: 10, t: 30, b: 36 }, xaxis: { title: { text: "epoch" } },
          yaxis: { title: { text: stat === "dist_init" ? "|W − W₀|" : stat === "l2" ? "|W|" : stat } },
        });
      });
    }
    redraw();
    // Linked x axes: a zoom (or its reset) in one chart is copied to the others that differ, so
    // the relayout events the copies fire end at once instead of bouncing back and forth.
    divs.forEach((d) => d.on("plotly_relayout", (ev) => {
      const range = ev["xaxis.range[0]"] !== undefined ? [ev["xaxis.range[0]"], ev["xaxis.range[1]"]] : ev["xaxis.range"] || null;
      if (!range && !ev["xaxis.autorange"]) return;
      divs.forEach((o) => {
        const axis = o.layout && o.layout.xaxis;
        if (o === d || !axis) return;
        const same = range
          ? !axis.autorange && axis.range && axis.range[0] === range[0] && axis.range[1] === range[1]
          : axis.autorange;
        if (!same) Plotly.relayout(o, range ? { "xaxis.range": range.slice() } : { "xaxis.autorange": true });
      });
    }));
  }

  // ---- biases --------------------------------------------------------------------------------

  function biases() {
    const s = section("biases", "Biases: each unit's bias over the epochs",
      "A bias shifts a unit's z = x·w + <b>b</b> before its activation. Narrow layers show one line per unit; " +
      "wide ones an epoch × unit heatmap. A run built with <code>use_bias: false</code> has no bias at all, " +
      "which is not the same as a bias of zero.");
    const vars = Object.keys(D.biases);
    if (!vars.length) {
      const none = D.runs.every((r) => Object.values(r.use_bias).every((b) => !b));
      s.appendChild(note(none ? "No run has biases (use_bias: false everywhere)." : "No bias snapshots to show."));
      return;
    }
    const candidates = D.runs.filter((r) => r.snapshot_epochs);
    let runId = (candidates.find((r) => vars.some((v) => D.biases[v].runs[r.id])) || D.runs[0]).id;
    const select = el("select", { id: "bias-run", onchange: (e) => { runId = e.target.value; redraw(); } },
      D.runs.map((r) => el("option", {
        value: r.id,
        selected: r.id === runId,
        text: r.name + (Object.values(r.use_bias).some((b) => b) ? "" : " (no bias)") + (r.snapshot_epochs ? "" : " (no snapshots)"),
      })));
    s.appendChild(el("div", { class: "controls" }, [el("label", {}, ["run: ", select])]));
    const grid = el("div", { class: "grid two" });
    const divs = vars.map((v) => chart("bias-" + v));
    divs.forEach((d) => grid.appendChild(d));
    s.appendChild(grid);

    function redraw() {
      const run = RUN[runId];
      vars.forEach((v, i) => {
        const layer = D.biases[v].layer;
        const data = D.biases[v].runs[runId];
        if (!data) {
          const why = run.use_bias[layer] === false
            ? `no bias: layer ${layer} of this run has use_bias: false (nothing to draw, not zeros)`
            : run.snapshot_epochs ? `layer ${layer} has no bias in this run` : "this run has no weight snapshots";
          emptyChart(divs[i], why, v);
          return;
        }
        const units = data.values.length ? data.values[0].length : 0;
        const base = { title: { text: `${v}: ${units} unit${units === 1 ? "" : "s"}`, font: { size: 13 } }, xaxis: { title: { text: "epoch (0 = initial)" } } };
        if (units > 8) {
          const z = data.values[0].map((_, u) => data.values.map((row) => row[u]));
          draw(divs[i], [{ type: "heatmap", x: data.epochs, y: z.map((_, u) => u), z: z, colorscale: "RdBu", zmid: 0,
            colorbar: { title: { text: "bias" } }, hovertemplate: "epoch %{x}, unit %{y}: %{z:.4g}<extra></extra>" }],
          Object.assign(base, { yaxis: { title: { text: "unit" } } }));
        } else {
          const traces = [];
          for (let u = 0; u < units; u++) {
            traces.push({ x: data.epochs, y: data.values.map((row) => row[u]), mode: "lines", name: `unit ${u}`,
              line: { color: run.colour, width: 1.5, dash: ["solid", "dot", "dash", "longdash", "dashdot", "longdashdot"][u % 6] },
              hovertemplate: `unit ${u}<br>epoch %{x}: %{y:.4g}<extra></extra>` });
          }
          draw(divs[i], traces, Object.assign(base, { yaxis: { title: { text: "bias value" } }, showlegend: units > 1 }));
        }
      });
    }
    redraw();
  }

  // ---- distributions and the dot product, both at the slider's epoch ------------------------

  function epochScope() {
    const wrap = el("div", { class: "epoch-scope" });
    const value = el("output", { id: "epoch-value", text: String(epoch) });
    const slider = el("input", {
      type: "range", id: "epoch-slider", min: 0, max: maxEpoch, step: 1, value: maxEpoch,
      oninput: (e) => { epoch = +e.target.value; value.textContent = String(epoch); onEpoch.forEach((f) => f()); },
    });
    wrap.appendChild(el("div", { class: "slider" }, [
      el("label", { for: "epoch-slider" }, ["epoch ", value, ` of ${maxEpoch} (0 = the initial weights) `]), slider,
    ]));
    app.appendChild(wrap);
    return wrap;
  }

  function distributions(wrap) {
    const s = section("distributions", "Distributions: the values of each variable at one epoch",
      "How many weights fall in each value range, for the epoch picked with the slider above " +
      "(epoch 0: the values the initializer drew). Runs are overlaid on the same bins. The range is " +
      "cut at the 0.5% and 99.5% quantiles of all runs and epochs so that a few extreme values do not " +
      "squeeze the rest into one bar; the values outside it are counted under each chart.");
    wrap.appendChild(s);
    const vars = Object.keys(D.histograms);
    if (!vars.length) { s.appendChild(note("no run has weight snapshots: nothing to draw")); return; }
    let pooled = D.loss.seeds && D.verdicts.groups.some((g) => g.n > 3);
    if (D.loss.seeds) {
      const select = el("select", { id: "hist-overlay", onchange: (e) => { pooled = e.target.value === "groups"; redraw(); } }, [
        el("option", { value: "runs", text: "one line per run", selected: !pooled }),
        el("option", { value: "groups", text: "one line per setting, its seeds' values pooled", selected: pooled }),
      ]);
      s.appendChild(el("div", { class: "controls" }, [el("label", {}, ["overlay: ", select])]));
    }
    s.appendChild(legendStrip(D.runs.filter((r) => r.snapshot_epochs)));
    const grid = el("div", { class: "grid two" });
    s.appendChild(grid);
    const items = vars.map((v) => {
      const div = chart("hist-" + v);
      const caption = el("p", { class: "caption" });
      grid.appendChild(el("div", {}, [div, caption]));
      return { v, div, caption };
    });

    function redraw() {
      items.forEach(({ v, div, caption }) => {
        const h = D.histograms[v];
        const centres = h.edges.slice(0, -1).map((e, i) => (e + h.edges[i + 1]) / 2);
        const traces = [];
        let below = 0, above = 0, nonfinite = 0, absent = [];
        const lines = pooled
          ? Object.entries(h.groups).map(([g, data]) => ({ data, colour: groupColour(+g), name: `${D.verdicts.groups[+g].group} (pooled)` }))
          : D.runs.filter((r) => h.runs[r.id]).map((r) => ({ data: h.runs[r.id], colour: r.colour, name: r.name }));
        lines.forEach(({ data, colour, name }) => {
          if (epoch >= data.counts.length) { absent.push(name); return; }
          below += data.below[epoch]; above += data.above[epoch]; nonfinite += data.nonfinite[epoch];
          traces.push({
            x: centres, y: data.counts[epoch], mode: "lines", line: { shape: "hvh", color: colour, width: 2 },
            fill: lines.length <= 4 ? "tozeroy" : "none", fillcolor: hexA(colour, 0.12), name: name,
            hovertemplate: `${name}<br>%{y} values near %{x:.3g}<extra></extra>`,
          });
        });
        draw(div, traces, {
          title: { text: `${v} at epoch ${epoch}`, font: { size: 13 } }, showlegend: false,
          xaxis: { title: { text: "value" }, range: [h.edges[0], h.edges[h.edges.length - 1]] },
          yaxis: { title: { text: "count" }, rangemode: "tozero" },
        });
        const parts = [`bins from ${fmt(h.edges[0])} to ${fmt(h.edges[h.edges.length - 1])}`];
        parts.push(below + above ? `outside that range: ${below} below, ${above} above` : "no value outside that range");
        if (nonfinite) parts.push(`${nonfinite} not finite (NaN or ∞)`);
        if (absent.length) parts.push(`no snapshot at this epoch: ${absent.join("; ")}`);
        const free = D.runs.filter((r) => noBias(r, v));
        if (free.length) parts.push(`no bias at all (use_bias: false, not zeros): ${free.length > 3 ? free.length + " runs" : free.map((r) => r.name).join("; ")}`);
        caption.textContent = parts.join(" · ");
      });
    }
    redraw();
    onEpoch.push(redraw);
  }

  function dot(wrap) {
    const s = section("dot", "The dot product: z = x·w + b, term by term",
      "What one unit computes: each input x times its weight w, summed, plus the bias b, gives z; the " +
      "activation turns z into the unit's output. These are the numbers <code>weightlab explain</code> prints, " +
      "at the slider's epoch.");
    wrap.appendChild(s);
    const d = D.dot;
    if (!d) { s.appendChild(note("no run with weight snapshots and rebuildable data: nothing to show")); return; }
    const run = RUN[d.run];
    let u = d.unit_ids.indexOf(d.unit);
    const meta = el("p", { class: "meta" });
    s.appendChild(meta);
    if (d.unit_ids.length > 1) {
      const select = el("select", { id: "dot-unit", onchange: (e) => { u = +e.target.value; redraw(); } },
        d.unit_ids.map((id, k) => el("option", { value: k, text: `unit ${id}`, selected: k === u })));
      s.appendChild(el("div", { class: "controls" }, [el("label", {}, [`unit of layer ${d.layer}: `, select])]));
    }
    const div = chart("dot-product");
    s.appendChild(div);
    const numbers = el("div");
    s.appendChild(numbers);

    function redraw() {
      let k = d.epochs.indexOf(epoch);
      const exact = k >= 0;
      if (!exact) k = d.epochs.filter((e) => e <= epoch).length - 1;
      if (k < 0) k = 0;
      const e = d.epochs[k];
      const unit = d.unit_ids[u];
      const product = d.product[k][u];
      const bias = d.use_bias ? d.bias[k][u] : null;
      const z = d.z[k][u];
      const output = d.output[k][u];
      meta.replaceChildren(swatch(run),
        ` ${run.name} · layer ${d.layer}, unit ${unit} of ${d.units} (0-based) · training sample ${d.sample} of ${d.samples} ` +
        `(target ${d.target.map(fmt).join(", ")}) · inputs from ${d.inputs_from} · activation ${d.activation}: ${d.formula}`);
      const names = d.names.map((n, i) => `${n}·w${i + 1}`);
      const x = [...names];
      const y = [...product];
      const measure = names.map(() => "relative");
      if (d.use_bias) { x.push("b (bias)"); y.push(bias); measure.push("relative"); }
      x.push("z"); y.push(0); measure.push("total");
      draw(div, [{
        type: "waterfall", x: x, y: y, measure: measure, connector: { line: { color: "#bbb" } },
        increasing: { marker: { color: "#2a9d8f" } }, decreasing: { marker: { color: "#e76f51" } },
        totals: { marker: { color: "#264653" } }, textposition: "outside",
        text: y.map((v, i) => (measure[i] === "total" ? fmt(z) : fmt(v))),
        hovertemplate: "%{x}: %{y:.4g}<extra></extra>",
      }], {
        title: { text: `epoch ${e}${exact ? "" : ` (the last snapshot of this run up to epoch ${epoch})`}: z = ${fmt(z)}, output = ${fmt(output)}`, font: { size: 13 } },
        yaxis: { title: { text: "contribution to z" }, zeroline: true }, showlegend: false,
      });
      const rows = d.names.map((n, i) => ({ name: n, x: d.x[k][i], w: d.w[k][u][i], p: product[i] }));
      const cols = [
        { title: "input", value: (r) => r.name, cls: "mono" },
        { title: "x", value: (r) => fmt(r.x) },
        { title: "w", value: (r) => fmt(r.w) },
        { title: "x·w", value: (r) => fmt(r.p) },
      ];
      const extra = [
        { name: "x·w summed", x: null, w: null, p: product.reduce((a, b) => a + b, 0) },
        { name: d.use_bias ? "+ b" : "+ b: no bias (use_bias: false)", x: null, w: null, p: bias },
        { name: "= z", x: null, w: null, p: z },
        { name: `output = ${d.activation}(z)`, x: null, w: null, p: output },
      ];
      numbers.replaceChildren(table(cols, rows.concat(extra)));
    }
    redraw();
    onEpoch.push(redraw);
  }

  // ---- tables --------------------------------------------------------------------------------

  function tables() {
    const s = section("tables", "Tables", "The same numbers as <code>weightlab compare</code>, to download.");
    [["runs", "Runs", D.tables.runs], ["seeds", "Seed statistics (final loss per group of seeds)", D.tables.seeds]].forEach(([key, title, rows]) => {
      s.appendChild(el("h3", { text: title }));
      s.appendChild(el("div", { class: "controls" }, [
        el("button", { type: "button", id: `download-${key}-csv`, text: "Download CSV", onclick: () => download(`weightlab-${key}.csv`, csv(rows), "text/csv") }),
        el("button", { type: "button", id: `download-${key}-json`, text: "Download JSON", onclick: () => download(`weightlab-${key}.json`, JSON.stringify(rows, null, 2), "application/json") }),
      ]));
      const cols = rows.length ? Object.keys(rows[0]).map((k) => ({ title: k, value: (r) => fmt(r[k]) })) : [];
      const t = table(cols, rows);
      t.classList.add("tall");
      s.appendChild(t);
    });
  }

  function footer() {
    app.appendChild(el("footer", {}, [
      el("p", { text: `weightlab ${D.version} · made ${D.generated} · drawn with Plotly, offline` }),
      el("p", {}, ["reproduce this page: ", el("code", { text: D.command || "weightlab report" })]),
    ]));
  }

  header();
  verdicts();
  loss();
  pairs();
  weights();
  biases();
  const wrap = epochScope();
  distributions(wrap);
  dot(wrap);
  tables();
  footer();
})();
