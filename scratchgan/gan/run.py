"""A training run: data, recipe, trainer, checkpoints and figures in one run directory.

``train_run`` is what ``scratchgan train`` calls. The run directory holds::

    checkpoint.npz        models, optimizers, RNGs, history (every epoch and on Ctrl-C)
    history.csv           per discriminator step: d_loss, g_loss, d_real, d_fake, acc_real, acc_fake
    loss.png              D and G loss per mini-batch
    d_outputs.png         D(x) and D(G(z)) per mini-batch
    progress.png/.gif     the fixed-noise samples after every epoch, one row per epoch
    samples.png           a final 8x8 grid
    accuracy.png          D accuracy over batches of 200 real + 200 fake covering the data set
    spot_the_fake.png     a 6x6 quiz with about a third fakes; spot_the_fake_answers.png
    summary.json          options, counters, final accuracy (and evaluation metrics if available)
    metrics.csv/.png      per-epoch Fréchet distance, classifier score, class coverage (MNIST runs)
    evaluation.json       the full evaluation of docs/evaluation.md after training (MNIST runs)
"""
import contextlib
import signal
import time
from pathlib import Path

import numpy as np

from .. import backend, plots
from ..data import BatchLoader, transforms
from ..fileio import write_json
from .checkpoint import Checkpoint, save_checkpoint
from .evaluate import RunEvaluator
from .objectives import d_accuracy
from .recipes import get_recipe
from .trainer import GANTrainer

CHECKPOINT = "checkpoint.npz"


class RunError(RuntimeError):
    """A run cannot start as asked (e.g. the directory holds another run)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C: the run stopped after a step and saved a checkpoint."""


def train_run(recipe, out_dir, images, epochs=None, device="cpu", resume=False, dataset="custom",
              quiet=False, callback=None, final_outputs=True, evaluate=True, data_dir=None, eval_samples=10000,
              **options):
    """Train ``recipe`` on uint8 ``images`` (N, C, H, W), writing into ``out_dir``.

    With ``resume=True`` the run continues from ``out_dir/checkpoint.npz`` with the options it
    was started with (``epochs`` may be raised). ``callback(trainer)`` runs after every step.
    With ``evaluate`` (and a classifier for ``dataset``, read from ``data_dir``), every epoch adds
    classifier metrics to metrics.csv and the end of the run writes evaluation.json.
    Returns the trainer. Raises DivergenceError (checkpoint of the last good epoch kept) and
    Interrupted (checkpoint of the current step written).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / CHECKPOINT
    checkpoint = _checkpoint_to_resume(ckpt_path, resume)
    if checkpoint is not None:
        recipe, options, epochs = _resumed_options(checkpoint, recipe, options, epochs)
    recipe = get_recipe(recipe)
    options = recipe.options(**options, epochs=epochs)
    image_shape = tuple(images.shape[1:])
    backend.manual_seed(options["seed"])
    setup = recipe.setup(options, image_shape)
    setup.G.to(device)
    setup.D.to(device)
    data = setup.preprocess(images)
    loader = BatchLoader(data, options["batch_size"], shuffle=True, drop_last=True, seed=options["seed"],
                         device=device)
    trainer = GANTrainer.from_setup(setup, device)
    progress = [_progress_row(trainer, setup)]
    epoch, epoch_metrics, epoch_seconds = 0, [], []
    if checkpoint is not None:
        checkpoint.restore(setup, trainer)
        loader.load_state_dict(checkpoint.meta["loader"])
        progress, epoch = checkpoint.progress(), checkpoint.meta["epoch"]
        epoch_metrics = checkpoint.meta.get("epoch_metrics", [])
        epoch_seconds = checkpoint.meta.get("epoch_seconds", [])
    evaluator = RunEvaluator.create(dataset, data_dir, images, quiet) if evaluate else None
    meta = {"recipe": recipe.name, "options": options, "image_shape": list(image_shape), "dataset": dataset,
            "device": device, "epoch_seconds": epoch_seconds}  # training seconds of each epoch, for the report

    def save(epoch_done):
        state = {**meta, "epoch": epoch_done, "loader": loader.state_dict(), "epoch_metrics": epoch_metrics}
        save_checkpoint(ckpt_path, state, setup, trainer, progress)

    with _interrupt_flag() as interrupted:
        while epoch < options["epochs"]:
            started = time.perf_counter()
            _train_epoch(trainer, loader, epoch, options["epochs"], quiet, callback, interrupted, save)
            epoch_seconds.append(round(time.perf_counter() - started, 3))
            epoch += 1
            progress.append(_progress_row(trainer, setup))
            if evaluator is not None:
                epoch_metrics.append(evaluator.epoch(trainer, setup, epoch))
                _write_epoch_metrics(out, epoch_metrics, quiet)
            save(epoch)
            _write_epoch_outputs(out, trainer, progress, len(loader))
    if final_outputs:
        summary = write_final_outputs(out, trainer, setup, data, options, meta)
        if evaluator is not None:
            _write_final_evaluation(out, evaluator, trainer, setup, summary, quiet, eval_samples)
    return trainer


def _write_epoch_metrics(out, epoch_metrics, quiet):
    columns = {k: [m[k] for m in epoch_metrics] for k in epoch_metrics[0]}
    plots.write_history_csv(out / "metrics.csv", columns)
    panels = {"Fréchet distance (classifier features), lower is better": {"samples": columns["frechet_distance"]},
              "classifier score, higher is better (10 at most)": {"samples": columns["classifier_score"]},
              "classes holding >= 2% of samples": {"samples": columns["classes_covered"]},
              "coverage: KL(class histogram || uniform)": {"samples": columns["coverage_kl"]}}
    plots.save_curve_panels(out / "metrics.png", panels, x=columns["epoch"], xlabel="epoch",
                            title=f"Per-epoch evaluation on {columns['n'][-1]} samples")
    if not quiet:
        last = epoch_metrics[-1]
        print(f"epoch {last['epoch']}: Fréchet distance {last['frechet_distance']:.2f}, classifier score "
              f"{last['classifier_score']:.2f}, {last['classes_covered']} classes covered")


def _write_final_evaluation(out, evaluator, trainer, setup, summary, quiet, n):
    """Full metrics on n samples; a failure here is reported, not fatal: training is done."""
    from ..evaluation import format_table
    try:
        row = evaluator.final(trainer, setup, n)
    except Exception as e:  # noqa: BLE001 - the run's results are already saved
        print(f"final evaluation failed: {e}")
        return
    write_json(out / "evaluation.json", row)
    summary["evaluation"] = row
    write_json(out / "summary.json", summary)
    if not quiet:
        print(format_table([row]))


def _checkpoint_to_resume(path, resume):
    if resume:
        if not path.exists():
            raise RunError(f"--resume: no checkpoint at {path}")
        return Checkpoint(path)
    if path.exists():
        raise RunError(f"{path} exists: pass --resume to continue that run, or choose another --out")
    return None


def _resumed_options(checkpoint, recipe, options, epochs):
    meta = checkpoint.meta
    if recipe is not None and recipe != meta["recipe"]:
        raise RunError(f"{checkpoint.path} is a {meta['recipe']!r} run, not {recipe!r}")
    changed = {k: v for k, v in options.items() if v is not None and meta["options"].get(k) != v}
    if changed:
        raise RunError(f"cannot change options when resuming (asked {changed}); start a new run instead")
    saved = dict(meta["options"])
    return meta["recipe"], {k: v for k, v in saved.items() if k != "epochs"}, epochs or saved["epochs"]


def _train_epoch(trainer, loader, epoch, epochs, quiet, callback, interrupted, save):
    from tqdm.auto import tqdm
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", disable=quiet, leave=True, unit="step")
    for step, real in enumerate(bar):
        trainer.train_step(real)
        if callback is not None:
            callback(trainer)
        if interrupted():
            save(epoch)  # mid-epoch: the loader's state says which batches remain
            raise Interrupted(f"interrupted; checkpoint saved after step {trainer.d_steps}")
        if step % 10 == 0 and trainer.history["d_loss"]:
            bar.set_postfix(D=f"{trainer.last('d_loss'):.3f}", G=f"{trainer.last('g_loss'):.3f}")
    trainer.flush()


@contextlib.contextmanager
def _interrupt_flag():
    """While active, Ctrl-C sets a flag (checked between steps) instead of raising mid-step."""
    state = {"hit": False}

    def handler(signum, frame):
        state["hit"] = True

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: leave Ctrl-C alone
        previous = None
    try:
        yield lambda: state["hit"]
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _progress_row(trainer, setup):
    return backend.asnumpy(setup.to_unit(trainer.sample(noise=trainer.fixed_noise))).astype(np.float32)


def _write_epoch_outputs(out, trainer, progress, steps_per_epoch):
    history = history_for_plots(trainer.history, steps_per_epoch)
    plots.write_history_csv(out / "history.csv", trainer.history)
    plots.save_loss_plot(out / "loss.png", history)
    plots.save_d_outputs_plot(out / "d_outputs.png", history)
    epochs = list(range(len(progress)))  # row 0: the untrained generator
    plots.save_progress(out / "progress.png", progress, epochs=epochs)
    plots.save_progress_gif(out / "progress.gif", progress, epochs=epochs)


def history_for_plots(history, steps_per_epoch):
    """Columns as arrays plus "epoch" (fractional, per step); the G loss is carried forward over
    discriminator-only steps (k > 1) so curves have no gaps."""
    g = np.asarray(history["g_loss"], dtype=np.float64)
    if len(g) and np.isnan(g).any():
        valid = ~np.isnan(g)
        idx = np.where(valid, np.arange(len(g)), 0)
        np.maximum.accumulate(idx, out=idx)
        g = np.where(valid[idx], g[idx], np.nanmean(g) if valid.any() else 0.0)
    epoch = np.arange(1, len(g) + 1) / steps_per_epoch
    return {**{k: np.asarray(v) for k, v in history.items()}, "g_loss": g, "epoch": epoch}


# -- after training ----------------------------------------------------------------------
def discriminator_accuracy(trainer, setup, data, batch_size=200, binarize_fakes=False):
    """The tutorial's check: D (eval mode) on every batch of ``batch_size`` real samples and
    as many fresh fakes. Returns per-batch accuracy on real and on fake samples, by the rule
    of ``objectives.d_correct`` (real when P(real) > 0.5)."""
    acc_real, acc_fake = [], []
    D, batch_size = setup.D, min(batch_size, len(data))
    for start in range(0, len(data) - batch_size + 1, batch_size):
        real = backend.to_device(data[start:start + batch_size], trainer.device)
        fake = trainer.sample(batch_size)
        if binarize_fakes:
            fake = transforms.binarize(fake)
        p_real = setup.head.prob_real(D.forward(real, train=False, grad=False))
        p_fake = setup.head.prob_real(D.forward(fake, train=False, grad=False))
        acc_real.append(float(d_accuracy(p_real, real=True)))
        acc_fake.append(float(d_accuracy(p_fake, real=False)))
    return np.array(acc_real), np.array(acc_fake)


def write_final_outputs(out, trainer, setup, data, options, meta, seed=0):
    """Sample grid, D accuracy over the data set, spot-the-fake, summary.json."""
    binarized = bool(options.get("binarize"))
    fakes = setup.to_unit(trainer.sample(64))
    if binarized:
        fakes = transforms.binarize(fakes)
    plots.save_grid(out / "samples.png", backend.asnumpy(fakes), nrow=8)
    acc_real, acc_fake = discriminator_accuracy(trainer, setup, data, binarize_fakes=binarized)
    plots.save_accuracy_plot(out / "accuracy.png", acc_real, acc_fake,
                             title=f"Discriminator accuracy, batches of {min(200, len(data))} real + as many fake, whole data set")
    rng = np.random.default_rng(seed)
    real = setup.to_unit(data[rng.choice(len(data), 36, replace=False)])
    quiz, is_fake = plots.spot_the_fake(backend.asnumpy(real), backend.asnumpy(fakes[:36]), n=36, rng=rng)
    plots.save_spot_the_fake(out / "spot_the_fake.png", out / "spot_the_fake_answers.png", quiz, is_fake)
    summary = {**meta, "d_steps": trainer.d_steps, "g_steps": trainer.g_steps,
               "d_accuracy_real": float(acc_real.mean()) if len(acc_real) else None,
               "d_accuracy_fake": float(acc_fake.mean()) if len(acc_fake) else None,
               "final": {k: trainer.last(k) for k in trainer.history}}
    write_json(out / "summary.json", summary)
    return summary
