"""``scratchgan report``: one self-contained HTML page about one run, or comparing several.

- ``rundir``: a run directory's files, read as they are (``read_run``);
- ``quiz``: the spot-the-fake quiz, drawn fresh from the checkpoint and the data (seeded);
- ``reference``: the real-data reference row beside evaluation.json (cached);
- ``page``: the HTML (template, stylesheet and script in ``assets/``, all inlined).

``build_report(["runs/mlp"], "runs/mlp/report.html")`` writes the page. See docs/report.md.
"""
import sys
from pathlib import Path

from ..fileio import atomic_write
from .rundir import ReportError, Run, read_run

__all__ = ["QUIZ_TILES", "ReportError", "Run", "build_report", "read_run", "run_names", "write_run_report"]

QUIZ_TILES = 24
EVALUATED_DATASETS = ("mnist", "fashion-mnist")


def build_report(run_dirs, out_path, data_dir=None, seed=0, quiz_tiles=QUIZ_TILES, reference=True, images=None,
                 log=print):
    """Write the report on ``run_dirs`` to ``out_path`` (atomically); return the list of rundir.Run.

    ``data_dir`` is where the real images (quiz, reference row) are looked up, as for training;
    nothing is downloaded. ``images``: the training images of a single run, if already loaded.
    ``quiz_tiles=0`` leaves the quiz out; ``reference=False`` the reference row. ``log`` gets a line
    for each part that could not be built (the page says the same).
    """
    from .page import render_page
    run_dirs = [Path(p) for p in run_dirs]
    if not run_dirs:
        raise ReportError("no run directories given")
    runs = [read_run(path, name) for path, name in zip(run_dirs, run_names(run_dirs))]
    quizzes = [_quiz(run, quiz_tiles, seed, data_dir, images if len(runs) == 1 else None, log) for run in runs]
    references = [_reference(run, data_dir, reference, log) for run in runs]
    page = render_page(runs, quizzes, references)
    out_path = Path(out_path)
    with atomic_write(out_path) as f:
        f.write(page.encode("utf-8"))
    return runs


def write_run_report(run_dir, data_dir=None, images=None, quiet=False):
    """``run_dir``/report.html at the end of ``scratchgan train``. Never raises: the run is complete
    whatever happens here, so a failure (or Ctrl-C) prints one line and returns None."""
    out = Path(run_dir) / "report.html"
    log = (lambda line: None) if quiet else print
    try:
        build_report([run_dir], out, data_dir=data_dir, images=images, log=log)
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001 - the run's own files are all written
        print(f"report.html not written ({type(e).__name__}: {e}); the run is complete, "
              f"`scratchgan report {run_dir}` retries", file=sys.stderr)
        return None
    log(f"report: {out}")
    return out


def run_names(paths):
    """Short unique names: the directory names, or the paths as given where names repeat."""
    names = [Path(p).resolve().name or str(p) for p in paths]
    return [str(p) if names.count(n) > 1 else n for p, n in zip(paths, names)]


def _quiz(run, tiles, seed, data_dir, images, log):
    from .quiz import QuizUnavailable, draw_quiz
    if tiles <= 0:
        return "left out (--quiz-tiles 0)."
    try:
        return draw_quiz(run, tiles, seed=seed, data_dir=data_dir, images=images)
    except QuizUnavailable as e:
        log(f"{run.name}: no quiz: {e}")
        return str(e)


def _reference(run, data_dir, wanted, log):
    from .reference import ReferenceUnavailable, reference_for
    dataset = run.info.get("dataset")
    if run.evaluation is None or dataset not in EVALUATED_DATASETS:
        return None
    if not wanted:
        return "left out (--no-reference)."
    try:
        return reference_for(run.evaluation, dataset, data_dir, log=log)
    except ReferenceUnavailable as e:
        log(f"{run.name}: no reference row: {e}")
        return str(e)
