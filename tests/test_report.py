"""scratchgan report: the HTML page built from tiny real runs (structure, embedded assets, values equal to
the run's files, quiz, missing files, comparison, CLI). The browser test is test_report_browser.py."""
import base64
import json
import os
import re
import signal
import shutil
from html.parser import HTMLParser

import numpy as np
import pytest

from scratchgan.cli import main
from scratchgan.data import write_idx
from scratchgan.data.images import load_images
from scratchgan.gan.run import Interrupted, train_run
from scratchgan.gan.sampling import sample_from_checkpoint
from scratchgan.plots import read_history_csv, write_history_csv
from scratchgan.report import QUIZ_TILES, ReportError, build_report, read_run
from scratchgan.report.quiz import draw_quiz
from scratchgan.report.rundir import MAX_POINTS, downsample
from test_run import digits

SVG_NAMESPACE = "http://www.w3.org/2000/svg"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def write_mnist(folder, n_train=60, n_test=40):
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / "train-images-idx3-ubyte.gz", digits(n_train)[:, 0])
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(n_train, np.uint8))
    write_idx(folder / "t10k-images-idx3-ubyte.gz", digits(n_test, seed=1)[:, 0])
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(n_test, np.uint8))
    return folder


@pytest.fixture(autouse=True)
def _no_user_data(tmp_path, monkeypatch):
    """Only the data a test names is found; the reference-row cache is the test's own."""
    monkeypatch.delenv("SCRATCHGAN_DATA", raising=False)
    monkeypatch.setenv("SCRATCHGAN_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny real mlp runs on a synthetic MNIST folder (no evaluation: a second or so each)."""
    root = tmp_path_factory.mktemp("report")
    data = write_mnist(root / "data")
    images = load_images("mnist", data_dir=data)
    for name, z_dim, epochs in (("a", 28, 2), ("b", 10, 1)):
        train_run("mlp", root / name, images, epochs=epochs, quiet=True, dataset="mnist", evaluate=False,
                  batch_size=20, seed=3, z_dim=z_dim)
    return {"root": root, "data": data, "a": root / "a", "b": root / "b"}


class Page(HTMLParser):
    """Parses a page, checking that every element is closed in order; collects ids, links and spans."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.stack, self.ids, self.urls, self.values, self.scripts = [], [], [], [], []
        self.tags, self._script = [], None
        self.feed(text)
        self.close()
        assert not self.stack, f"unclosed elements: {self.stack}"

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if "id" in attrs:
            self.ids.append(attrs["id"])
        for key in ("src", "href", "poster", "data"):
            if key in attrs and tag != "object":
                self.urls.append((tag, key, attrs[key]))
        if tag == "span" and "data-key" in attrs:
            self.values.append((attrs["data-key"], json.loads(attrs["data-value"])))
        if tag == "script":
            self._script = [attrs, ""]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]} (open: {self.stack})"
        self.stack.pop()
        if tag == "script":
            self.scripts.append(tuple(self._script))
            self._script = None

    def handle_data(self, data):
        if self._script is not None:
            self._script[1] += data

    def data(self):
        return json.loads(next(text for attrs, text in self.scripts if attrs.get("id") == "report-data"))

    def value(self, key):
        found = [v for k, v in self.values if k == key]
        assert found, f"no value {key!r} in the page"
        return found[0]


def build(tmp_path, runs_, **kw):
    out = tmp_path / "report.html"
    build_report(runs_, out, log=lambda line: None, **kw)
    text = out.read_text(encoding="utf-8")
    return text, Page(text)


def assert_self_contained(text, page):
    """No URL leaves the page: every src is a data: URI, every href an anchor on the page."""
    assert len(set(page.ids)) == len(page.ids), "repeated ids"
    for tag, key, url in page.urls:
        if key == "href":
            assert url.startswith("#") and url[1:] in page.ids, (tag, url)
        else:
            assert url.startswith("data:image/"), (tag, key, url[:40])
    assert not [t for t, a in page.tags if t in ("link", "iframe", "object", "embed") or (t == "script" and "src" in a)]
    outside = re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"'<)]*", text.replace(SVG_NAMESPACE, ""))
    assert not outside, outside[:5]
    assert "@import" not in text and "url(" not in text


def test_page_is_valid_self_contained_and_shows_the_runs_files(runs, tmp_path):
    text, page = build(tmp_path, [runs["a"]], data_dir=runs["data"])
    assert_self_contained(text, page)
    assert page.tags[0][0] == "html" and any(t == "meta" and a.get("name") == "viewport" for t, a in page.tags)
    summary = json.loads((runs["a"] / "summary.json").read_text())
    for key, v in summary["options"].items():
        assert page.value(f"options.{key}") == v, key
    assert page.value("recipe") == "mlp" and page.value("dataset") == "mnist"
    assert page.value("device") == summary["device"] == "cpu"
    assert page.value("d_accuracy_real") == summary["d_accuracy_real"]
    for key, v in summary["final"].items():
        assert page.value(f"final.{key}") == v
    seconds = summary["epoch_seconds"]
    assert len(seconds) == 2 and all(s > 0 for s in seconds)
    assert page.value("epoch_seconds_mean") == pytest.approx(np.mean(seconds), rel=1e-12)
    assert summary["data"]["array_sha256"] in text  # the data fingerprint gan/run.py records
    # the curves are history.csv itself (short history: every step), against epochs
    history, charts = read_history_csv(runs["a"] / "history.csv"), page.data()["charts"]
    loss = {s["name"]: s for s in charts["run0-loss"]["series"]}
    assert loss["D loss"]["y"] == history["d_loss"].tolist() and loss["G loss"]["y"] == history["g_loss"].tolist()
    assert loss["D loss"]["x"][-1] == 2.0 and len(loss["D loss"]["x"]) == 6  # 60 images / 20 = 3 steps per epoch
    dout = {s["name"]: s["y"] for s in charts["run0-dout"]["series"]}
    assert dout == {"D(x), real": history["d_real"].tolist(), "D(G(z)), fake": history["d_fake"].tolist()}
    assert charts["run0-seconds"]["series"][0]["y"] == seconds
    # images are the run's files, byte for byte
    for name in ("progress.gif", "samples.png"):
        uri = next(a["src"] for t, a in page.tags if t == "img" and a.get("alt", "").startswith(name))
        assert base64.b64decode(uri.split(",", 1)[1]) == (runs["a"] / name).read_bytes()
    for t, a in page.tags:
        if t == "img":
            assert a.get("alt"), a.get("src", "")[:30]
    # no evaluation: said so, and no metrics table or reference row
    assert "No metrics.csv" in text and "Final evaluation" not in text
    # the quiz: 24 tiles as buttons, a third of them fake in the answer key
    tiles = [a for t, a in page.tags if t == "button" and a.get("class") == "tile"]
    answers = page.data()["quizzes"]["run0-quiz"]
    assert len(tiles) == len(answers) == QUIZ_TILES and sum(answers) == QUIZ_TILES // 3
    assert all(a["aria-pressed"] == "false" and a["type"] == "button" for a in tiles)


def test_quiz_mixes_real_data_and_fresh_fakes_reproducibly(runs):
    run = read_run(runs["a"])
    quiz = draw_quiz(run, 12, seed=5, data_dir=runs["data"])
    again = draw_quiz(run, 12, seed=5, data_dir=runs["data"])
    other = draw_quiz(run, 12, seed=6, data_dir=runs["data"])
    assert np.array_equal(quiz.images, again.images) and np.array_equal(quiz.is_fake, again.is_fake)
    assert not np.array_equal(quiz.images, other.images)
    assert quiz.images.shape == (12, 1, 28, 28) and quiz.is_fake.sum() == 4
    fakes = (sample_from_checkpoint(str(runs["a"] / "checkpoint.npz"), 4, seed=5) > 0.5).astype(np.float32)
    assert sorted(map(bytes, quiz.images[quiz.is_fake])) == sorted(map(bytes, fakes))  # binarized, like training
    reals = (digits(60).astype(np.float32) / 255 > 0.5).astype(np.float32)
    real_set = {bytes(r) for r in reals}
    assert all(bytes(im) in real_set for im in quiz.images[~quiz.is_fake])


@pytest.mark.parametrize("recipe,options", [
    ("lapgan", dict(z_dim=4, ngf=2, ndf=2, batch_size=8, seed=1)),
    ("progan", dict(z_dim=4, width=2, batch_size=8, group_size=4, phase_images=16, seed=1)),
])
def test_quiz_of_a_multiscale_run_draws_its_samples(runs, tmp_path, recipe, options):
    """ProGAN and LAPGAN sample from noise like any GAN (their run classes are families, as the
    image-to-image ones are): the quiz's fakes are the checkpoint's samples."""
    images = load_images("mnist", data_dir=runs["data"])
    train_run(recipe, tmp_path / recipe, images, epochs=1, quiet=True, dataset="mnist", evaluate=False, **options)
    quiz = draw_quiz(read_run(tmp_path / recipe), 6, seed=2, data_dir=runs["data"])
    fakes = sample_from_checkpoint(str(tmp_path / recipe / "checkpoint.npz"), 2, seed=2)
    assert quiz.images.shape == (6, *fakes.shape[1:]) and quiz.is_fake.sum() == 2
    assert sorted(map(bytes, quiz.images[quiz.is_fake])) == sorted(map(bytes, fakes.astype(np.float32)))
    if recipe == "progan":   # one tiny epoch stops at 16x16 of 32: the reals are shown at that stage too
        from scratchgan.gan.checkpoint import Checkpoint
        from scratchgan.gan.progan import ProGANRun
        from scratchgan.gan.sampling import rebuild_setup
        checkpoint = Checkpoint(str(tmp_path / recipe / "checkpoint.npz"))
        setup = rebuild_setup(checkpoint)
        assert fakes.shape[-1] == 16 and setup.image_shape[-1] == 32
        reals = setup.to_unit(ProGANRun.reals_at_sampling_stage(setup.preprocess(images), checkpoint))
        assert {bytes(im) for im in quiz.images[~quiz.is_fake]} <= {bytes(r) for r in reals.astype(np.float32)}


def test_quiz_of_an_image_to_image_run_says_why_there_is_none(tmp_path):
    from scratchgan.report.quiz import QuizUnavailable
    from test_cyclegan import tiny_run
    tiny_run(tmp_path, "cyc", 1, final_outputs=False)
    with pytest.raises(QuizUnavailable, match="cyclegan run maps images to images"):
        draw_quiz(read_run(tmp_path / "cyc"), 6)


def test_train_ends_with_the_report_for_multiscale_runs_not_image_to_image_ones(tmp_path):
    data = write_mnist(tmp_path / "data", n_train=60)
    common = ["--data-dir", str(data), "--epochs", "1", "--batch-size", "8", "--no-evaluate", "--quiet"]
    assert main(["train", "lapgan", "--out", str(tmp_path / "lap"), "--z-dim", "4", "--ngf", "2", "--ndf", "2",
                 *common]) == 0
    page = Page((tmp_path / "lap" / "report.html").read_text(encoding="utf-8"))
    assert len(page.data()["quizzes"]["run0-quiz"]) == QUIZ_TILES
    assert main(["train", "srresnet", "--out", str(tmp_path / "sr"), "--n-blocks", "0", "--width", "2",
                 *common]) == 0
    assert (tmp_path / "sr" / "checkpoint.npz").is_file() and not (tmp_path / "sr" / "report.html").exists()


def test_missing_data_in_progress_runs_and_bad_directories(runs, tmp_path, capsys):
    # no data: the page still builds, without the quiz, and says why
    text, page = build(tmp_path, [runs["a"]], data_dir=None)
    assert "No quiz in this report: the real images (mnist) are not available" in text
    assert "quizzes" in page.data() and not page.data()["quizzes"]
    # a run stopped by Ctrl-C in epoch 2 of 2: no summary.json, history.csv of epoch 1
    stopped = tmp_path / "stopped"

    def press_ctrl_c(trainer):
        if trainer.d_steps == 4:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted):
        train_run("mlp", stopped, digits(), epochs=2, quiet=True, batch_size=20, seed=3, callback=press_ctrl_c)
    text, page = build(tmp_path, [stopped], quiz_tiles=6)
    assert "1 of 2 epochs done" in text and "There is no summary.json yet" in text
    assert "No quiz in this report: the run was trained on images passed in code" in text  # dataset 'custom'
    d_loss = read_history_csv(stopped / "history.csv")["d_loss"]
    assert len(d_loss) == 3 and page.data()["charts"]["run0-loss"]["series"][0]["y"] == d_loss.tolist()
    (stopped / "history.csv").unlink()
    (stopped / "progress.gif").unlink()
    text, page = build(tmp_path, [stopped], quiz_tiles=0)
    assert "No history.csv" in text and "left out (--quiz-tiles 0)" in text
    assert list(page.data()["charts"]) == ["run0-seconds"]  # the checkpoint's epoch_seconds: epoch 1 only
    # resuming keeps the earlier epochs' seconds and adds the rest
    seconds = read_run(stopped).recorded("epoch_seconds")
    train_run(None, stopped, digits(), resume=True, quiet=True, final_outputs=False)
    resumed = read_run(stopped).recorded("epoch_seconds")
    assert len(seconds) == 1 and resumed[:1] == seconds and len(resumed) == 2 and resumed[1] > 0
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match="not a run directory"):
        build_report([tmp_path / "empty"], tmp_path / "x.html")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "summary.json").write_text("{not json")
    with pytest.raises(ReportError, match="broken.*summary.json"):
        build_report([tmp_path / "broken"], tmp_path / "x.html")


def test_long_histories_are_bucket_means_and_the_page_says_so(runs, tmp_path):
    long_run = tmp_path / "long"
    shutil.copytree(runs["a"], long_run)
    rng = np.random.default_rng(0)
    steps = 2 * 1234  # two epochs of 1234 steps
    history = {k: rng.random(steps) for k in ("d_loss", "g_loss", "d_real", "d_fake", "acc_real", "acc_fake")}
    history["g_loss"][::3] = np.nan  # D-only steps
    write_history_csv(long_run / "history.csv", history)
    text, page = build(tmp_path, [long_run], quiz_tiles=0)
    series = {s["name"]: s for s in page.data()["charts"]["run0-loss"]["series"]}
    d_loss = read_history_csv(long_run / "history.csv")["d_loss"]
    expected = [d_loss[b].mean() for b in np.array_split(np.arange(steps), MAX_POINTS)]
    assert len(series["D loss"]["y"]) == MAX_POINTS
    assert np.allclose(series["D loss"]["y"], expected, rtol=1e-6, atol=0)
    g = history["g_loss"]
    assert np.allclose(series["G loss"]["y"], [np.nanmean(g[b]) for b in np.array_split(np.arange(steps), MAX_POINTS)],
                       rtol=1e-6)
    epochs = np.arange(1, steps + 1) / 1234
    assert series["D loss"]["x"] == [round(epochs[b].mean(), 6) for b in np.array_split(np.arange(steps), MAX_POINTS)]
    assert "each point is the mean of about 3 consecutive steps" in text
    x, y, bucket = downsample(np.arange(10), np.arange(10.0), max_points=4)
    assert bucket == 3 and y.tolist() == [1.0, 4.0, 6.5, 8.5] and x.tolist() == y.tolist()


def test_comparison_puts_options_and_curves_side_by_side(runs, tmp_path):
    text, page = build(tmp_path, [runs["a"], runs["b"]], data_dir=runs["data"], quiz_tiles=6)
    assert_self_contained(text, page)
    assert "Comparison of 2 runs" in text
    row = re.search(r'<th scope="row">z_dim <span class="differs-mark".*?</tr>', text).group(0)
    assert [json.loads(v) for v in re.findall(r'data-value="([^"]*)"', row)] == [28, 10]
    assert 'class="differs"' not in re.search(r'<th scope="row">batch_size</th>.*?</tr>', text).group(0)
    charts = page.data()["charts"]
    for column in ("d_loss", "g_loss", "d_real", "d_fake"):
        series = {s["name"]: s["y"] for s in charts[f"cmp-h-{column}"]["series"]}
        assert series == {name: read_history_csv(runs[name] / "history.csv")[column].tolist() for name in "ab"}
    assert len(page.data()["quizzes"]) == 2 and {"run0", "run1", "comparison"} <= set(page.ids)


def test_cli_report_default_output_skips_stray_files_and_fails_clearly(runs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(runs["a"]), "--data-dir", str(runs["data"]), "--quiz-tiles", "6"]) == 0
    assert (runs["a"] / "report.html").is_file()
    stray = tmp_path / "notes.txt"
    stray.write_text("not a run")
    assert main(["report", str(runs["a"]), str(runs["b"]), str(stray), "--quiz-tiles", "0"]) == 0
    captured = capsys.readouterr()
    assert "skipping" in captured.err and (tmp_path / "report.html").is_file()
    assert main(["report", str(tmp_path), "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a run directory" in err
    assert main(["report", str(stray)]) == 2


@pytest.mark.slow
def test_train_writes_the_report_with_evaluation_and_reference_row(tmp_path, capsys, monkeypatch):
    """`scratchgan train` ends with report.html; evaluation.json, metrics.csv and the reference row are on it."""
    data = write_mnist(tmp_path / "data", n_train=1100)  # the evaluation holds out 1000
    out = tmp_path / "run"
    args = ["train", "mlp", "--data-dir", str(data), "--epochs", "1", "--out", str(out), "--batch-size", "100",
            "--eval-samples", "300", "--quiet"]
    assert main(args) == 0
    text = (out / "report.html").read_text(encoding="utf-8")
    page = Page(text)
    assert_self_contained(text, page)
    evaluation = json.loads((out / "evaluation.json").read_text())
    for key in ("n", "frechet_distance", "classifier_score", "classifier_score_std", "coverage_kl",
                "classes_covered", "parzen_ll", "parzen_sigma", "precision", "recall"):
        assert page.value(f"model.{key}") == evaluation[key], key
    from scratchgan.evaluation import reference_row
    reference = reference_row("mnist", str(data), n=300)
    for key in ("frechet_distance", "classifier_score", "precision", "recall", "parzen_ll"):
        assert page.value(f"reference.{key}") == pytest.approx(reference[key], rel=1e-9), key
    metrics = read_history_csv(out / "metrics.csv")
    charts = page.data()["charts"]
    assert charts["run0-m-frechet_distance"]["series"][0]["y"] == metrics["frechet_distance"].tolist()
    assert page.value("metrics.classifier_score") == metrics["classifier_score"][0]
    assert len(page.data()["quizzes"]["run0-quiz"]) == QUIZ_TILES
    # the reference row is cached: the next report does not compute it again
    import scratchgan.evaluation as evaluation_module
    monkeypatch.setattr(evaluation_module, "reference_row", lambda *a, **k: pytest.fail("not cached"))
    assert main(["report", str(out), "--data-dir", str(data), "-o", str(tmp_path / "again.html")]) == 0
    assert Page((tmp_path / "again.html").read_text()).value("reference.recall") == page.value("reference.recall")
    # --no-report; and a report that fails leaves the finished run alone (exit 0, one line)
    assert main(args[:7] + [str(tmp_path / "quiet")] + args[8:] + ["--no-report", "--no-evaluate"]) == 0
    assert not (tmp_path / "quiet" / "report.html").exists()
    import scratchgan.report as report_module
    monkeypatch.setattr(report_module, "build_report", lambda *a, **k: 1 / 0)
    capsys.readouterr()
    assert main(args[:7] + [str(tmp_path / "failing")] + args[8:] + ["--no-evaluate"]) == 0
    err = capsys.readouterr().err
    assert "report.html not written (ZeroDivisionError" in err and err.count("\n") == 1
    assert (tmp_path / "failing" / "summary.json").is_file()
