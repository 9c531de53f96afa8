"""Rendering: runs (rundir.Run), quizzes and reference rows -> one self-contained HTML page.

The page is the template ``assets/report.html`` with the stylesheet and script of ``assets/``
inlined, the body built here, and the chart data and quiz answers as one JSON object in a
``<script type="application/json" id="report-data">`` element, which ``report.js`` draws from.
Every number in a table is a ``<span class="v" data-key=KEY data-value=JSON>`` holding the exact
value of the run's file beside its rounded text.
"""
import base64
import datetime
import html
import io
import json
import math
from importlib import resources
from string import Template

import numpy as np

from .. import __version__
from .rundir import IMAGES, MAX_POINTS, downsample

ASSETS = resources.files(__package__) / "assets"

# (history.csv columns, chart title, y-axis label, {column: series name})
HISTORY_CHARTS = [
    ("loss", "Discriminator and generator loss", "loss", {"d_loss": "D loss", "g_loss": "G loss"}),
    ("dout", "Discriminator outputs", "mean score", {"d_real": "D(x), real", "d_fake": "D(G(z)), fake"}),
    ("acc", "Discriminator accuracy on the training batches", "accuracy",
     {"acc_real": "on real", "acc_fake": "on fake"}),
]
# history.csv column -> title of its chart when runs are overlaid
COMPARISON_TITLES = {"d_loss": "D loss", "g_loss": "G loss", "d_real": "D(x): mean D output on real batches",
                     "d_fake": "D(G(z)): mean D output on fake batches",
                     "acc_real": "D accuracy on the real training batches",
                     "acc_fake": "D accuracy on the fake training batches"}
# (metrics.csv column, chart title, y-axis label)
METRIC_CHARTS = [
    ("frechet_distance", "Fréchet distance per epoch (lower is better)", "Fréchet distance"),
    ("classifier_score", "Classifier score per epoch (higher is better)", "classifier score"),
    ("classes_covered", "Classes holding at least 2 % of samples", "classes"),
    ("coverage_kl", "Coverage: KL(class histogram || uniform), lower is better", "KL (nats)"),
    ("conditional_accuracy", "Conditional accuracy per epoch: the class asked for, recognised (higher is better)",
     "accuracy"),
]
# (evaluation.json key, label, better, key of its ± part or its "of N" part)
EVALUATION_ROWS = [
    ("n", "samples", "", None),
    ("frechet_distance", "Fréchet distance (classifier features)", "lower", None),
    ("classifier_score", "classifier score", "higher", "classifier_score_std"),
    ("coverage_kl", "coverage: KL to uniform", "lower", None),
    ("classes_covered", "coverage: classes ≥ 2 %", "higher", "num_classes"),
    ("parzen_ll", "Parzen log-likelihood (nats)", "higher", "parzen_std_error"),
    ("parzen_sigma", "Parzen sigma", "", None),
    ("precision", "precision (k = 3)", "higher", None),
    ("recall", "recall (k = 3)", "higher", None),
]
# rows of a conditional model's evaluation (shown when the evaluation has them)
CONDITIONAL_ROWS = [
    ("conditional_accuracy", "conditional accuracy", "higher", None),
    ("mean_per_class_frechet", "per-class Fréchet distance, mean", "lower", None),
]


def evaluation_rows(evaluations):
    """EVALUATION_ROWS, and CONDITIONAL_ROWS if one of ``evaluations`` (dicts or None) has them."""
    conditional = any(e and "conditional_accuracy" in e for e in evaluations)
    return EVALUATION_ROWS + (CONDITIONAL_ROWS if conditional else [])


def render_page(runs, quizzes, references, built=None):
    """The page for ``runs`` (list of rundir.Run). ``quizzes[i]``: a quiz.Quiz or the reason there is
    none (str); ``references[i]``: (row, where), a reason (str), or None (nothing to compare)."""
    data = {"charts": {}, "quizzes": {}}
    parts = []
    if len(runs) > 1:
        parts.append(_comparison(runs, data))
    for i, run in enumerate(runs):
        parts.append(_run_section(run, f"run{i}", quizzes[i], references[i], data, several=len(runs) > 1))
    title = (f"scratchgan report: {runs[0].name}" if len(runs) == 1
             else f"scratchgan report: {len(runs)} runs compared")
    built = built or datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    header = (f"<header><h1>{esc(title)}</h1><p class=\"meta\">Built {esc(built)} by scratchgan {esc(__version__)}"
              f" from {', '.join('<code>' + esc(str(r.path)) + '</code>' for r in runs)}.</p>"
              f"{_nav(runs)}</header>")
    template = Template((ASSETS / "report.html").read_text(encoding="utf-8"))
    return template.substitute(title=esc(title), css=(ASSETS / "report.css").read_text(encoding="utf-8"),
                               js=(ASSETS / "report.js").read_text(encoding="utf-8"),
                               data=_script_json(data), body=header + "\n<main>\n" + "\n".join(parts) + "\n</main>")


# -- small helpers ---------------------------------------------------------------------------
def esc(text):
    return html.escape(str(text), quote=True)


def fmt(value):
    """A table value as text: integers as they are, floats to 4 significant digits."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(value)
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def value(key, v, text=None):
    """A number as shown, with its exact value in data-value (JSON) for readers and tests."""
    return (f'<span class="v" data-key="{esc(key)}" data-value="{esc(json.dumps(_jsonable(v)))}">'
            f"{esc(fmt(v) if text is None else text)}</span>")


def _jsonable(v):
    if isinstance(v, (np.floating, float)):
        return None if not math.isfinite(v) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    return v


def _script_json(data):
    """JSON safe inside <script>: no "<", ">" or "&" characters, no NaN."""
    text = json.dumps(_jsonable(data), allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def data_uri(content, name):
    mime = {"png": "image/png", "gif": "image/gif"}[name.rsplit(".", 1)[-1]]
    return f"data:{mime};base64,{base64.b64encode(content).decode('ascii')}"


def png_uri(image):
    """(C, H, W) float image in [0, 1] -> a PNG data: URI."""
    from PIL import Image
    pixels = np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8)
    pixels = pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return data_uri(buffer.getvalue(), "x.png")


def _table(caption, header, rows, cls=""):
    head = "".join(f'<th scope="col">{h}</th>' for h in header)
    body = "".join(f"<tr>{row}</tr>" for row in rows)
    return (f'<div class="table-wrap"><table class="{cls}"><caption>{caption}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")


def _nav(runs):
    links = ['<li><a href="#comparison">Comparison</a></li>'] if len(runs) > 1 else []
    links += [f'<li><a href="#run{i}">{esc(r.name)}</a></li>' for i, r in enumerate(runs)]
    if len(runs) == 1:
        links += ['<li><a href="#run0-curves">Curves</a></li>', '<li><a href="#run0-images">Samples</a></li>',
                  '<li><a href="#run0-quiz">Spot the fake</a></li>']
    return f'<nav aria-label="Contents"><ul>{"".join(links)}</ul></nav>'


def _chart(data, chart_id, title, y_label, series, x_label, note=""):
    """A chart placeholder (report.js draws it) and its data; None if no series has a point."""
    series = [s for s in series if len(s["x"])]
    if not series:
        return ""
    data["charts"][chart_id] = {"title": title, "xLabel": x_label, "yLabel": y_label, "series": series}
    note_html = f'<p class="chart-note">{esc(note)}</p>' if note else ""
    return (f'<figure class="chart" id="{esc(chart_id)}" data-chart="{esc(chart_id)}">'
            f"<figcaption>{esc(title)}</figcaption>{note_html}"
            f'<noscript><p>Charts need JavaScript; the numbers are in the run\'s CSV files.</p></noscript>'
            f"</figure>")


def _series(name, x, y, round_y=False):
    """A chart series; NaN points (e.g. G loss on discriminator-only steps) are left out."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(y)
    ys = [float(f"{v:.7g}") for v in y[keep]] if round_y else [float(v) for v in y[keep]]
    return {"name": name, "x": [round(float(v), 6) for v in x[keep]], "y": ys}


# -- one run -----------------------------------------------------------------------------------
def history_axis(run):
    """(x values per history row, x label): fractional epochs when the steps per epoch are known."""
    rows = len(next(iter(run.history.values())))
    steps = run.steps_per_epoch
    if steps:
        return np.arange(1, rows + 1) / steps, "epoch"
    return np.arange(1, rows + 1), "discriminator step"


def history_series(run, column, name):
    """(series, bucket): a history.csv column against the run's axis, downsampled past MAX_POINTS."""
    x, _ = history_axis(run)
    xs, ys, bucket = downsample(x, run.history[column])
    return _series(name, xs, ys, round_y=bucket > 1), bucket


def _history_note(run, bucket):
    rows = len(next(iter(run.history.values())))
    if bucket > 1:
        return (f"history.csv has {rows} discriminator steps; each point is the mean of about {bucket} "
                f"consecutive steps ({MAX_POINTS} points, NaN steps skipped).")
    return f"Every one of the {rows} discriminator steps of history.csv."


def _run_charts(run, prefix, data):
    parts = []
    if run.history:
        _, x_label = history_axis(run)
        extra = [c for c in run.history if not any(c in cols for *_, cols in HISTORY_CHARTS)]
        groups = HISTORY_CHARTS + [(f"h-{c}", c, c, {c: c}) for c in extra]  # columns added by extensions
        for cid, title, ylab, cols in groups:
            series, bucket = [], 1
            for column, name in cols.items():
                if column in run.history:
                    s, bucket = history_series(run, column, name)
                    series.append(s)
            parts.append(_chart(data, f"{prefix}-{cid}", title, ylab, series, x_label, _history_note(run, bucket)))
    if run.metrics and "epoch" in run.metrics:
        for column, title, ylab in METRIC_CHARTS:
            if column in run.metrics:
                series = [_series(title.split(" per epoch")[0], run.metrics["epoch"], run.metrics[column])]
                if f"ema_{column}" in run.metrics:   # a run keeping an average of G's weights (gan/averaging.py)
                    series.append(_series("averaged G", run.metrics["epoch"], run.metrics[f"ema_{column}"]))
                parts.append(_chart(data, f"{prefix}-m-{column}", title, ylab, series, "epoch",
                                    f"metrics.csv, {fmt(int(run.metrics['n'][-1]))} samples per epoch"
                                    if "n" in run.metrics else "metrics.csv"))
    seconds = run.recorded("epoch_seconds")
    if seconds:
        parts.append(_chart(data, f"{prefix}-seconds", "Seconds per epoch", "seconds",
                            [_series("seconds", np.arange(1, len(seconds) + 1), seconds)], "epoch"))
    if not parts:
        return f'<section id="{prefix}-curves"><h3>Curves</h3><p class="note">No curves yet.</p></section>'
    return (f'<section id="{prefix}-curves"><h3>Curves</h3><p class="hint">Hover over a chart (or focus it '
            f"and use the arrow keys) to read the values; the legend buttons show and hide series.</p>"
            f'<div class="charts">{"".join(parts)}</div></section>')


def _overview(run):
    seconds = run.recorded("epoch_seconds")
    if seconds:
        time_text = (f"{value('epoch_seconds_mean', float(np.mean(seconds)), f'{np.mean(seconds):.3g} s')} per epoch "
                     f"on average ({len(seconds)} epochs timed, {np.sum(seconds):.4g} s in all)")
    else:
        time_text = "not recorded"
    fingerprint = run.fingerprint
    if fingerprint is None:
        fp_text = "not recorded"
    elif isinstance(fingerprint, dict):
        fp_text = "; ".join(f"{esc(k)}: <code>{esc(v)}</code>" for k, v in fingerprint.items())
    else:
        fp_text = f"<code>{esc(fingerprint)}</code>"
    device = run.recorded("device")
    planned = run.options.get("epochs")
    ckpt_trainer = (run.checkpoint_meta or {}).get("trainer", {})
    d_steps = ckpt_trainer.get("d_steps", (run.summary or {}).get("d_steps"))
    g_steps = ckpt_trainer.get("g_steps", (run.summary or {}).get("g_steps"))
    items = [
        ("recipe", value("recipe", run.info["recipe"])),
        ("dataset", value("dataset", run.info.get("dataset", "not recorded"))),
        ("dataset fingerprint", fp_text),
        ("image shape", value("image_shape", run.info.get("image_shape"),
                              " × ".join(map(str, run.info.get("image_shape", []))))),
        ("device", value("device", device) if device else "not recorded"),
        ("epochs", f"{value('epochs_done', run.epochs_done)} of {value('epochs', planned)}"
                   + ("" if run.finished else " (not finished)")),
        ("steps", f"{value('d_steps', d_steps)} discriminator, {value('g_steps', g_steps)} generator"),
        ("time per epoch", time_text),
    ]
    s = run.summary if run.finished else None
    if s is not None and s.get("d_accuracy_real") is not None:
        items.append(("D accuracy over the data set",
                      f"{value('d_accuracy_real', s['d_accuracy_real'])} on real, "
                      f"{value('d_accuracy_fake', s['d_accuracy_fake'])} on fake (summary.json)"))
    if s is not None and s.get("final"):
        items.append(("last values", ", ".join(f"{esc(k)} {value('final.' + k, v)}" for k, v in s["final"].items())))
    dl = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in items)
    return f'<dl class="overview">{dl}</dl>'


def _options_table(run):
    rows = [f'<th scope="row">{esc(k)}</th><td>{value("options." + k, v)}</td>' for k, v in run.options.items()]
    return _table("Options (summary.json / checkpoint)", ["option", "value"], rows, cls="options")


def _evaluation_table(run, reference):
    if run.evaluation is None:
        return ""
    columns = []
    ref_note = ""
    if isinstance(reference, tuple):
        row, where = reference
        columns.append(("real test vs train", "reference", row))
        ref_note = (f'<p class="note">The reference row is what real data scores: computed at report time on '
                    f"{esc(where)} (the same settings as the run's evaluation; cached), not read from the run.</p>")
    elif isinstance(reference, str):
        ref_note = f'<p class="note">No real-data reference row: {esc(reference)}</p>'
    columns.append((run.evaluation.get("name", "model") + " (evaluation.json)", "model", run.evaluation))
    rows = []
    for key, label, better, extra in evaluation_rows([run.evaluation]):
        cells = "".join(f"<td>{_metric_cell(row, key, extra, role)}</td>" for _, role, row in columns)
        hint = f' <span class="better">({better} is better)</span>' if better else ""
        rows.append(f'<th scope="row">{esc(label)}{hint}</th>{cells}')
    header = ["metric"] + [esc(name) for name, _, _ in columns]
    table = _table("Final evaluation (docs/evaluation.md)", header, rows, cls="evaluation")
    return f"<section><h3>Final metrics</h3>{table}{ref_note}</section>"


def _metric_cell(row, key, extra, role):
    if key not in row:
        return "–"
    main = value(f"{role}.{key}", row[key])
    if extra is None or extra not in row:
        return main
    joiner = " / " if extra == "num_classes" else " ± "
    return f"{main}{joiner}{value(f'{role}.{extra}', row[extra])}"


def _metrics_table(run):
    if not run.metrics:
        return ""
    columns = list(run.metrics)
    rows = ["".join(f"<td>{value('metrics.' + c, run.metrics[c][i].item())}</td>" for c in columns)
            for i in range(len(run.metrics[columns[0]]))]
    table = _table("metrics.csv", [esc(c) for c in columns], rows, cls="metrics")
    return f"<details><summary>Per-epoch metrics as a table (metrics.csv)</summary>{table}</details>"


def _images(run, prefix):
    figures = []
    for name, caption in IMAGES.items():
        if name in run.images:
            figures.append(f'<figure class="image"><img src="{data_uri(run.images[name], name)}" '
                           f'alt="{esc(name)}: {esc(caption)}" class="pixelated">'
                           f"<figcaption><code>{esc(name)}</code>: {esc(caption)}</figcaption></figure>")
    body = "".join(figures) or '<p class="note">No sample images yet.</p>'
    return f'<section id="{prefix}-images"><h3>Samples</h3><div class="images">{body}</div></section>'


def _quiz(quiz, prefix, data):
    heading = f'<section id="{prefix}-quiz" class="quiz"><h3>Spot the fake</h3>'
    if isinstance(quiz, str):
        return f'{heading}<p class="note">No quiz in this report: {esc(quiz)}</p></section>'
    n, n_fake = len(quiz.is_fake), int(quiz.is_fake.sum())
    quiz_id = f"{prefix}-quiz"
    data["quizzes"][quiz_id] = [bool(f) for f in quiz.is_fake]
    tiles = "".join(
        f'<button type="button" class="tile" aria-pressed="false" data-index="{i}">'
        f'<img src="{png_uri(image)}" alt="quiz image {i + 1} of {n}" class="pixelated">'
        f'<span class="verdict"></span></button>' for i, image in enumerate(quiz.images))
    return (f'{heading}<p>{n} images: {n - n_fake} real training images and {n_fake} drawn from the generator '
            f"just now (seed {quiz.seed}). Select the ones you think are fake (click, or Tab to an image and "
            f"press Space), then reveal the answers.</p>"
            f'<div class="quiz-grid" role="group" aria-label="quiz images">{tiles}</div>'
            f'<p class="quiz-controls"><span class="marked" aria-live="polite">0 marked as fake.</span> '
            f'<button type="button" class="reveal">Reveal the answers</button> '
            f'<button type="button" class="reset">Start again</button></p>'
            f'<p class="score" role="status" aria-live="polite"></p></section>')


def _run_section(run, prefix, quiz, reference, data, several):
    notes = "".join(f'<p class="note">{esc(n)}</p>' for n in run.notes)
    level = "h2"
    parts = [f'<section id="{prefix}" class="run"><{level}>{"Run: " if several else ""}{esc(run.name)}</{level}>',
             f'<p class="meta"><code>{esc(str(run.path))}</code></p>', notes,
             '<div class="two-col">', _overview(run), _options_table(run), "</div>",
             _evaluation_table(run, reference), _run_charts(run, prefix, data), _metrics_table(run),
             _images(run, prefix), _quiz(quiz, prefix, data), "</section>"]
    return "\n".join(p for p in parts if p)


# -- several runs --------------------------------------------------------------------------------
def _comparison(runs, data):
    names = [esc(r.name) for r in runs]
    keys = list(dict.fromkeys(k for r in runs for k in r.options))
    rows = []
    for label, key, get in ([("recipe", "recipe", lambda r: r.info["recipe"]),
                             ("dataset", "dataset", lambda r: r.info.get("dataset")),
                             ("device", "device", lambda r: r.recorded("device"))]
                            + [(k, "options." + k, (lambda k: lambda r: r.options.get(k))(k)) for k in keys]):
        values = [get(r) for r in runs]
        differs = len({json.dumps(_jsonable(v)) for v in values}) > 1
        mark = ' <span class="differs-mark" title="differs between runs">≠</span>' if differs else ""
        cell = '<td class="differs">' if differs else "<td>"
        cells = "".join(f"{cell}{value(key, v)}</td>" for v in values)
        rows.append(f'<th scope="row">{esc(label)}{mark}</th>{cells}')
    options = _table("Options (≠ marks the ones that differ)", ["option"] + names, rows, cls="compare options")
    results = _table("Final numbers", ["number"] + names, _comparison_results(runs), cls="compare results")
    charts = _comparison_charts(runs, data)
    return (f'<section id="comparison"><h2>Comparison of {len(runs)} runs</h2>{options}{results}'
            f'<h3>Curves, overlaid</h3><p class="hint">One series per run; hover or focus a chart to read '
            f'values, and use the legend buttons to show or hide runs.</p><div class="charts">{charts}</div>'
            f"</section>")


def _comparison_results(runs):
    def summary(key):
        return lambda r: (r.summary or {}).get(key) if r.finished else None

    def evaluation(key):
        return lambda r: (r.evaluation or {}).get(key)

    def mean_seconds(r):
        s = r.recorded("epoch_seconds")
        return float(np.mean(s)) if s else None

    lines = [("epochs done", "epochs_done", lambda r: r.epochs_done),
             ("finished", "finished", lambda r: "yes" if r.finished else "no"),
             ("seconds per epoch (mean)", "epoch_seconds_mean", mean_seconds),
             ("D accuracy on real", "d_accuracy_real", summary("d_accuracy_real")),
             ("D accuracy on fake", "d_accuracy_fake", summary("d_accuracy_fake")),
             ("last D loss", "final.d_loss", lambda r: (summary("final")(r) or {}).get("d_loss")),
             ("last G loss", "final.g_loss", lambda r: (summary("final")(r) or {}).get("g_loss"))]
    lines += [(label + (f" ({better})" if better else ""), "model." + key, evaluation(key))
              for key, label, better, _ in evaluation_rows([r.evaluation for r in runs])]
    rows = []
    for label, key, get in lines:
        values = [get(r) for r in runs]
        if all(v is None for v in values):
            continue  # e.g. no run was evaluated
        cells = "".join(f"<td>{value(key, v)}</td>" for v in values)
        rows.append(f'<th scope="row">{esc(label)}</th>{cells}')
    return rows


def _comparison_charts(runs, data):
    parts = []
    with_history = [r for r in runs if r.history]
    x_label = ("epoch" if all(r.steps_per_epoch for r in with_history) else "discriminator step")
    columns = list(dict.fromkeys(c for r in with_history for c in r.history))
    names = {c: name for *_, cols in HISTORY_CHARTS for c, name in cols.items()}
    for column in columns:
        series, buckets = [], []
        for r in with_history:
            if column in r.history:
                s, bucket = _comparison_history_series(r, column, x_label)
                series.append(s)
                buckets.append(bucket)
        note = ("Longer histories are shown as means of consecutive steps "
                f"(at most {MAX_POINTS} points per run)." if max(buckets) > 1 else "Every step of each history.csv.")
        parts.append(_chart(data, f"cmp-h-{column}", COMPARISON_TITLES.get(column, column), names.get(column, column),
                            series, x_label, note))
    for column, title, ylab in METRIC_CHARTS:
        series = [_series(r.name, r.metrics["epoch"], r.metrics[column]) for r in runs
                  if r.metrics and column in r.metrics and "epoch" in r.metrics]
        parts.append(_chart(data, f"cmp-m-{column}", title, ylab, series, "epoch", "metrics.csv of each run"))
    seconds = [(r.name, r.recorded("epoch_seconds")) for r in runs if r.recorded("epoch_seconds")]
    parts.append(_chart(data, "cmp-seconds", "Seconds per epoch", "seconds",
                        [_series(name, np.arange(1, len(s) + 1), s) for name, s in seconds], "epoch"))
    return "".join(parts)


def _comparison_history_series(run, column, x_label):
    x, _ = history_axis(run)
    if x_label != "epoch":
        x = np.arange(1, len(x) + 1)
    xs, ys, bucket = downsample(x, run.history[column])
    return _series(run.name, xs, ys, round_y=bucket > 1), bucket
