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
    loss_vs_frechet.png   D's loss (a critic's Wasserstein estimate) per epoch beside the Fréchet distance
    evaluation.json       the full evaluation of docs/evaluation.md after training (MNIST runs)
    class_grid.png/class_progress.gif   conditional models: one row per class, one column per fixed
                          noise vector, after the last epoch and after every epoch
    checkpoint_eNNN.npz   copies of the checkpoint after every N-th epoch (--keep-checkpoints N)
"""
import contextlib
import hashlib
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np

from .. import backend, plots
from ..data import BatchLoader, transforms
from ..fileio import atomic_write, check_writable_dir, remove_stale_temporaries, write_json
from .checkpoint import Checkpoint, CheckpointError, save_checkpoint
from .conditional import balanced_labels, class_names
from .evaluate import MIN_EVAL_SAMPLES, RunEvaluator
from .objectives import d_accuracy
from .recipes import get_recipe
from .trainer import DivergenceError, GANTrainer

CHECKPOINT = "checkpoint.npz"
EVALUATION = "evaluation.json"
#: every file a run writes (their stale atomic-write temporaries are removed when a run starts)
RUN_FILES = (CHECKPOINT, "history.csv", "loss.png", "d_outputs.png", "progress.png", "progress.gif",
             "samples.png", "accuracy.png", "spot_the_fake.png", "spot_the_fake_answers.png", "summary.json",
             "metrics.csv", "metrics.png", EVALUATION, "loss_vs_frechet.png", "class_grid.png", "class_progress.gif")
CLASS_GRID_COLUMNS = 10   # fixed noise vectors per row of the class grid
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunError(RuntimeError):
    """A run cannot start as asked (e.g. the directory holds another run)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM: the run stopped cleanly; the message says what is on disk."""

    def __init__(self, message, signum=signal.SIGINT):
        super().__init__(message)
        self.signum = signum

    @property
    def exit_code(self):
        """128 + the signal number, as a shell reports a process killed by it (130 for Ctrl-C)."""
        return 128 + int(self.signum)


def train_run(recipe, out_dir, images, epochs=None, device="cpu", resume=False, dataset="custom",
              quiet=False, callback=None, final_outputs=True, evaluate=True, data_dir=None, eval_samples=10000,
              data_identity=None, labels=None, keep_checkpoints=None, cuda_graph=False, **options):
    """Train ``recipe`` on uint8 ``images`` (N, C, H, W), writing into ``out_dir``.

    With ``resume=True`` the run continues from ``out_dir/checkpoint.npz`` with the options it
    was started with (``epochs`` may be raised, never lowered below the epochs done).
    ``callback(trainer)`` runs after every step. With ``evaluate`` (and a classifier for
    ``dataset``, whose real data are read from ``data_dir``), every epoch adds classifier
    metrics to metrics.csv and the end of the run writes evaluation.json on ``eval_samples``.
    ``data_identity`` (from ``load_images(..., with_identity=True)``) is recorded in the
    checkpoint and summary, beside the SHA-256 of ``images``; a resumed run must get the same images.
    A conditional recipe (cgan, cdcgan, acgan, ...) also needs ``labels``, the class of each image
    (int, 0 .. num_classes - 1); its checkpoint records the classes (num_classes and their names).
    ``keep_checkpoints`` N: after every N-th epoch, also keep a copy of the checkpoint,
    ``checkpoint_eNNN.npz`` (NNN: the epochs done), to score or sample the run at that epoch.
    ``cuda_graph``: on the GPU, replay the step as recorded CUDA graphs (gan/cuda_graph.py); RunError
    where the recipe's step cannot be recorded.

    Everything is checked before any work: options, ``eval_samples``, that ``out_dir`` is
    writable. Returns the trainer. Raises DivergenceError (saying which checkpoint, if any, is
    on disk) and Interrupted (Ctrl-C or SIGTERM: the checkpoint of the current step written).
    """
    def check_labels(recipe, options):
        return check_run_labels(labels, images, options.get("num_classes", 0), recipe.name)

    new_folder = not Path(out_dir).exists()
    out, checkpoint, recipe, options = prepare_run(recipe, out_dir, resume, epochs, evaluate, eval_samples,
                                                   check=check_labels, keep_checkpoints=keep_checkpoints, **options)
    ckpt_path = out / CHECKPOINT
    num_classes = options.get("num_classes", 0)
    labels = check_labels(recipe, options)
    if checkpoint is not None:
        _check_same_data(checkpoint, images, labels)
    remove_stale_temporaries(out, RUN_FILES + tuple((recipe.family or GANRun).files))
    image_shape = image_shape_of(images)
    backend.manual_seed(options["seed"])
    if recipe.family is None:
        names = class_names(dataset, num_classes) if num_classes else None
        family = GANRun(recipe, options, images, device, labels=labels, class_names=names)
    else:
        family = recipe.family(recipe, options, images, device)
    trainer, loader = family.trainer, family.loader
    try:
        step = _graphed_step(trainer) if cuda_graph else trainer.train_step
    except RunError:
        if new_folder:                            # nothing was written: leave no empty run folder behind
            with contextlib.suppress(OSError):
                out.rmdir()
        raise
    evaluator = family.evaluator(dataset, data_dir, quiet) if evaluate else None   # may fix the progress inputs
    progress = [family.progress_row()]
    epoch, epoch_metrics, epoch_seconds = 0, [], []
    if checkpoint is not None:
        family.restore(checkpoint)
        try:
            loader.load_state_dict(checkpoint.meta["loader"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"checkpoint {ckpt_path} cannot be resumed: bad loader state ({e})") from None
        progress, epoch = checkpoint.progress(), checkpoint.meta["epoch"]
        epoch_metrics = checkpoint.meta.get("epoch_metrics", [])
        epoch_seconds = checkpoint.meta.get("epoch_seconds", [])
    recorded = checkpoint.meta.get("data") if checkpoint is not None else None
    meta = {"recipe": recipe.name, "options": options, "image_shape": list(image_shape), "dataset": dataset,
            "data": recorded or data_record(images, data_identity, labels),
            "device": device, "epoch_seconds": epoch_seconds}  # training seconds of each epoch, for the report
    if getattr(trainer, "conditional", False):   # what sample and evaluate need to draw and score classes
        meta["conditioning"] = {"num_classes": num_classes, "class_names": family.class_names}

    def save(epoch_done):
        _check_finite_models(family.models(), trainer)
        state = {**meta, "epoch": epoch_done, "loader": loader.state_dict(), "epoch_metrics": epoch_metrics}
        save_checkpoint(ckpt_path, state, family.parts(), trainer, progress,
                        class_progress=list(family.class_progress) or None)

    try:
        with _stop_requests() as stop_signal:
            g_steps = options.get("g_steps")   # --g-steps N: train until N generator updates
            while (trainer.g_steps < g_steps) if g_steps else (epoch < options["epochs"]):
                started = time.perf_counter()
                if not _train_epoch(trainer, loader, epoch, _planned(options), quiet, callback, stop_signal, save,
                                    g_steps, step):
                    save(epoch)   # N generator updates reached mid-epoch: the loader's state says where
                    family.write_epoch_outputs(out, progress, len(loader), epoch_metrics)
                    break
                epoch_seconds.append(round(time.perf_counter() - started, 3))
                epoch += 1
                family.end_epoch(epoch)
                _check_finite_models(family.models(), trainer)
                progress.append(family.progress_row())
                if evaluator is not None:
                    evaluator = _evaluate_epoch(evaluator, family, epoch, epoch_metrics, out, quiet)
                save(epoch)
                if keep_checkpoints and epoch % keep_checkpoints == 0:
                    keep_copy(ckpt_path, out / kept_checkpoint_name(epoch))
                family.write_epoch_outputs(out, progress, len(loader), epoch_metrics)
                if stop_signal():  # Ctrl-C or SIGTERM during the end-of-epoch work
                    raise Interrupted(f"{_signal_name(stop_signal())}: stopped after epoch {epoch}; "
                                      f"checkpoint saved after step {trainer.d_steps}", stop_signal())
            if final_outputs:
                with _raise_on_stop(epoch):
                    if stop_signal():  # arrived since the last check
                        _final_stop_handler(epoch)(stop_signal(), None)
                    _unlink(out / EVALUATION)  # never leave an earlier evaluation beside newer results
                    summary = family.write_final_outputs(out, options, meta)
                    if evaluator is not None:
                        _write_final_evaluation(out, evaluator, family, summary, quiet, eval_samples, epoch)
    except DivergenceError as e:
        raise DivergenceError(f"{e}. {describe_checkpoint(ckpt_path)}") from None
    return trainer


class GANRun:
    """What ``train_run`` asks of a model family, for the noise-to-image GANs of ``GANTrainer``.

    A family (a recipe's ``family``; this class when it names none) is built as
    ``family(recipe, options, images, device)`` after the global seed is set, and offers:

    - ``trainer``: ``train_step(batch)``, ``history`` (with "d_loss" and/or "g_loss"), ``last(key)``,
      ``flush()``, ``d_steps`` (steps done), ``state_dict()``/``load_state_dict()``;
    - ``loader``: the BatchLoader the run iterates (its state is saved in checkpoints);
    - ``models()``: {name: model} checked for finite weights before every save;
    - ``parts()``: {checkpoint prefix: models and optimizers} saved and restored by prefix;
    - ``restore(checkpoint)``, ``progress_row()`` (fixed inputs' images after each epoch);
    - ``end_epoch(epoch)``: called when ``epoch`` epochs are done; ``class_progress``: per-epoch class
      grids of a conditional model (saved in checkpoints; empty otherwise);
    - ``evaluator(dataset, data_dir, quiet)``: per-epoch and final metrics, or None;
    - ``write_epoch_outputs(out, progress, steps_per_epoch, epoch_metrics)`` and
      ``write_final_outputs(out, options, meta) -> summary``; ``files``: the extra files it writes.

    The image-to-image families (cyclegan.py, srgan.py) implement the same.
    """

    files = ()
    trainer_class = GANTrainer   # a family with its own step subclasses it (lapgan.py)
    draws_samples = True         # G maps noise to images (the image-to-image families: False)

    def __init__(self, recipe, options, images, device, labels=None, class_names=None):
        """``labels`` (one class per image) and ``class_names`` for a conditional recipe."""
        self.setup = setup = recipe.setup(options, image_shape_of(images))
        setup.G.to(device)
        setup.D.to(device)
        self.data = setup.preprocess(images) if labels is None else (setup.preprocess(images), labels)
        self.loader = BatchLoader(self.data, options["batch_size"], shuffle=True, drop_last=True,
                                  seed=options["seed"], device=device)
        self.trainer = self.trainer_class.from_setup(setup, device)
        self.trainer.steps_per_epoch = len(self.loader)
        self.images = images
        self.class_names = class_names
        self.class_progress = [_class_grid(self.trainer, setup)] if self.trainer.conditional else []

    def models(self):
        return {"G": self.setup.G, "D": self.setup.D}

    def parts(self):
        s = self.setup
        return {"G": s.G, "D": s.D, "opt_g": s.opt_g, "opt_d": s.opt_d}

    def restore(self, checkpoint):
        checkpoint.restore(self.parts(), self.trainer)
        if self.trainer.conditional:
            self.class_progress = list(checkpoint.progress("class_progress"))

    def progress_row(self):
        return _progress_row(self.trainer, self.setup)

    def end_epoch(self, epoch):
        self.trainer.after_epoch(epoch)
        if self.trainer.conditional:
            self.class_progress.append(_class_grid(self.trainer, self.setup))

    def evaluator(self, dataset, data_dir, quiet):
        return RunEvaluator.create(dataset, data_dir, self.images, quiet)

    def epoch_metrics(self, evaluator, epoch):
        return evaluator.epoch(self.trainer, self.setup, epoch)

    def final_metrics(self, evaluator, n):
        return evaluator.final(self.trainer, self.setup, n)

    def write_epoch_outputs(self, out, progress, steps_per_epoch, epoch_metrics=()):
        _write_epoch_outputs(out, self.trainer, progress, steps_per_epoch, epoch_metrics)
        if self.trainer.conditional:
            _write_class_grids(out, self.class_progress, self.class_names)

    def write_final_outputs(self, out, options, meta):
        return write_final_outputs(out, self.trainer, self.setup, self.data, options, meta)


def image_shape_of(images):
    """(C, H, W) of a run's images: an array (N, C, H, W), or a tuple of such arrays (one per domain)."""
    return tuple((images[0] if isinstance(images, tuple) else images).shape[1:])


def kept_checkpoint_name(epoch):
    """The name of the copy of the checkpoint kept after ``epoch`` epochs (--keep-checkpoints)."""
    return f"checkpoint_e{epoch:03d}.npz"


def keep_copy(source, target):
    """Copy a checkpoint, atomically (a reader sees the old file or the whole new one)."""
    with open(source, "rb") as f, atomic_write(target) as out:
        shutil.copyfileobj(f, out)


def _check_keep_checkpoints(n):
    if n is not None and (not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1):
        raise ValueError(f"keep_checkpoints (--keep-checkpoints) must be an integer >= 1, got {n!r}")


def prepare_run(recipe, out_dir, resume=False, epochs=None, evaluate=True, eval_samples=10000, check=None,
                keep_checkpoints=None, **options):
    """Every check a run can make before it has its data, so nothing is loaded or trained in vain:
    ``out_dir`` is writable, ``eval_samples`` makes sense, ``--resume`` finds a checkpoint (and
    without it, none is there), resumed options and epochs fit it, every option is valid.
    ``check(recipe, options)``, if given, runs before the folder is created (train_run checks its labels).

    Returns (out folder, Checkpoint or None, Recipe, the run's complete options).
    """
    out = Path(out_dir)
    _check_eval_samples(eval_samples, evaluate)
    _check_keep_checkpoints(keep_checkpoints)
    checkpoint = _checkpoint_to_resume(out / CHECKPOINT, resume)
    if checkpoint is not None:
        recipe, options, epochs = _resumed_options(checkpoint, recipe, options, epochs)
    recipe = get_recipe(recipe)
    options = recipe.options(**options, epochs=epochs)
    if check is not None:
        check(recipe, options)
    check_writable_dir(out)  # last: it creates the folder
    return out, checkpoint, recipe, options


def data_record(images, identity=None, labels=None):
    """What a run records about its data: the identity of the files (if known) and the training array's SHA-256
    (for a tuple of arrays, one per domain: their shapes, and the SHA-256 of their SHA-256s; and the labels'
    SHA-256 for a conditional run)."""
    record = {k: v for k, v in (identity or {}).items()}
    record["array_shape"] = [list(a.shape) for a in images] if isinstance(images, tuple) else list(images.shape)
    record["array_sha256"] = array_sha256(images)
    if labels is not None:
        record["labels_sha256"] = array_sha256(labels)
    return record


def check_run_labels(labels, images, num_classes, recipe_name):
    """The labels a run trains on: None for an unconditional recipe; for a conditional one, ``labels``
    as int64 (N,), checked against the images and the classes (ValueError otherwise)."""
    if not num_classes:
        return None
    if labels is None:
        raise ValueError(f"{recipe_name} is a conditional recipe: it trains on images with class labels "
                         f"(--dataset mnist or fashion-mnist; an image folder has no labels)")
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != len(images) or labels.dtype.kind not in "iu":
        raise ValueError(f"{recipe_name}: expected one integer class label per image ({len(images)}), got "
                         f"{labels.dtype} labels of shape {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{recipe_name}: labels run from {labels.min()} to {labels.max()}, outside the "
                         f"{num_classes} classes 0..{num_classes - 1} (option num_classes)")
    return labels.astype(np.int64)


def array_sha256(images):
    if isinstance(images, tuple):
        return hashlib.sha256("".join(array_sha256(a) for a in images).encode()).hexdigest()
    return hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()


def describe_checkpoint(path):
    """What is on disk at ``path``, in words, for messages after a failure."""
    path = Path(path)
    if not path.exists():
        return (f"No checkpoint was written ({path} does not exist): the run stopped before its first "
                f"checkpoint, so there is nothing to resume")
    try:
        meta = Checkpoint(path).meta
    except CheckpointError as e:
        return f"The checkpoint on disk cannot be read: {e}"
    steps = meta.get("trainer", {}).get("d_steps", "?")
    mid = meta.get("loader", {}).get("batch", 0)
    where = f"in epoch {meta['epoch'] + 1}" if mid else f"after epoch {meta['epoch']}"
    return f"{path} is intact: the last good state, {where} (step {steps})"


def _check_eval_samples(n, evaluate):
    if evaluate and (not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < MIN_EVAL_SAMPLES):
        raise ValueError(f"eval_samples (--eval-samples) must be an integer >= {MIN_EVAL_SAMPLES}, got {n!r}; "
                         f"to skip the evaluation, use --no-evaluate (evaluate=False)")


def _check_same_data(checkpoint, images, labels=None):
    """A resumed run must see the images (and labels) it was trained on: same shape, same SHA-256 where recorded."""
    meta = checkpoint.meta
    if list(image_shape_of(images)) != meta["image_shape"]:
        raise RunError(f"{checkpoint.path} was trained on images of shape {tuple(meta['image_shape'])}, "
                       f"these are {image_shape_of(images)}: resume with the same data")
    recorded = (meta.get("data") or {}).get("array_sha256")
    if recorded and recorded != array_sha256(images):
        was = meta["data"].get("array_shape", ["?"])[0]
        now = "+".join(str(len(a)) for a in images) if isinstance(images, tuple) else len(images)
        raise RunError(f"{checkpoint.path} was trained on other data ({was} images, SHA-256 {recorded[:16]}...; "
                       f"now {now} images, {array_sha256(images)[:16]}...): resume with the same "
                       f"--dataset and --data-dir, or start a new run in another --out")
    recorded_labels = (meta.get("data") or {}).get("labels_sha256")
    if recorded_labels and labels is not None and recorded_labels != array_sha256(labels):
        raise RunError(f"{checkpoint.path} was trained on the same images with other labels: resume with the "
                       f"same --dataset and --data-dir")


def _check_finite_models(models, trainer):
    """DivergenceError if a weight of a model ({name: model}) is NaN or infinite: such a state is never saved."""
    for model_name, model in models.items():
        for name, layer, key in model.named_parameters():
            xp = backend.get_xp(layer.params[key])
            if not bool(xp.isfinite(layer.params[key]).all()):
                raise DivergenceError(f"non-finite weights in {model_name}.{name} after discriminator step "
                                      f"{trainer.d_steps}; stopping without saving this state")


def _evaluate_epoch(evaluator, family, epoch, epoch_metrics, out, quiet):
    """Add this epoch's quick metrics; a failure is reported and ends the evaluation, not the run."""
    try:
        epoch_metrics.append(family.epoch_metrics(evaluator, epoch))
    except (ValueError, ArithmeticError, np.linalg.LinAlgError) as e:
        print(f"warning: per-epoch evaluation failed after epoch {epoch} ({e}); the run continues without it",
              file=sys.stderr)
        return None
    (getattr(evaluator, "write_epoch_metrics", None) or _write_epoch_metrics)(out, epoch_metrics, quiet)
    return evaluator


def _write_epoch_metrics(out, epoch_metrics, quiet):
    columns = {k: [m[k] for m in epoch_metrics] for k in epoch_metrics[0]}
    plots.write_history_csv(out / "metrics.csv", columns)
    titles = {"frechet_distance": "Fréchet distance (classifier features), lower is better",
              "classifier_score": "classifier score, higher is better (10 at most)",
              "classes_covered": "classes holding >= 2% of samples",
              "coverage_kl": "coverage: KL(class histogram || uniform)"}
    if "conditional_accuracy" in columns:
        titles["conditional_accuracy"] = "conditional accuracy: the classifier names the class asked for"
    averaged = "ema_frechet_distance" in columns   # a run keeping an average of G's weights (averaging.py)
    panels = {title: ({"G": columns[key], "averaged G": columns[f"ema_{key}"]} if averaged
                      else {"samples": columns[key]}) for key, title in titles.items()}
    plots.save_curve_panels(out / "metrics.png", panels, x=columns["epoch"], xlabel="epoch",
                            title=f"Per-epoch evaluation: {columns['n'][-1]} samples against "
                                  f"{columns.get('reference_n', ['all'])[-1]} training images (compare epochs, "
                                  f"not with evaluation.json)")
    if not quiet:
        last = epoch_metrics[-1]
        conditional = (f", conditional accuracy {last['conditional_accuracy']:.3f}"
                       if "conditional_accuracy" in last else "")
        print(f"epoch {last['epoch']}: Fréchet distance {last['frechet_distance']:.2f}, classifier score "
              f"{last['classifier_score']:.2f}, {last['classes_covered']} classes covered{conditional}")


def _write_final_evaluation(out, evaluator, family, summary, quiet, n, epoch):
    """Full metrics on n samples; a failure here is reported, not fatal: training is done."""
    from ..evaluation import format_table
    try:
        row = family.final_metrics(evaluator, n)
    except (ValueError, OSError, ArithmeticError, np.linalg.LinAlgError) as e:
        print(f"warning: final evaluation failed, no {EVALUATION} written: {e}", file=sys.stderr)
        return
    row["epoch"] = epoch
    write_json(out / EVALUATION, row)
    summary["evaluation"] = row
    write_json(out / "summary.json", summary)
    if not quiet:
        print((getattr(evaluator, "format", None) or (lambda r: format_table([r])))(row))


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
    options = dict(options)
    g_steps = options.pop("g_steps", None)   # like --epochs, a new total for the run
    saved = checkpoint.options(get_recipe(meta["recipe"]).defaults)
    changed = {k: v for k, v in options.items() if v is not None and saved.get(k) != v}
    if changed:
        raise RunError(f"cannot change options when resuming (asked {changed}); start a new run instead")
    if epochs is not None:
        _check_resume_epochs(checkpoint, epochs)
    done = meta.get("trainer", {}).get("g_steps", 0)   # generator updates made so far
    if g_steps is not None:
        if isinstance(g_steps, (int, np.integer)) and g_steps < done:
            raise RunError(f"--g-steps {g_steps} is fewer than the {done} generator updates the run in "
                           f"{checkpoint.path.parent} has made; --g-steps is the total: ask for {done} or more")
        saved["g_steps"] = g_steps
    elif epochs is not None:
        _check_epochs_not_capped_by_g_steps(checkpoint, saved.get("g_steps"), done, epochs)
    return meta["recipe"], {k: v for k, v in saved.items() if k != "epochs"}, epochs or saved.get("epochs")


def _check_epochs_not_capped_by_g_steps(checkpoint, g_steps, done, epochs):
    """A run started with --g-steps N stops at N updates whatever --epochs says: a resume asking for more
    epochs of a run already at N (``done`` updates) would train nothing, so it is refused with what to ask for."""
    if g_steps and done >= g_steps:
        raise RunError(f"--epochs {epochs}: the run in {checkpoint.path.parent} was started with --g-steps {g_steps}, "
                       f"which it has reached and which still decides where it stops; pass --g-steps with a "
                       f"larger total (e.g. --g-steps {g_steps + done}) to train on")


def _check_resume_epochs(checkpoint, epochs):
    """--epochs on resume is the new total: it may not undo epochs already trained."""
    done = checkpoint.meta["epoch"]
    partial = bool((checkpoint.meta.get("loader") or {}).get("batch"))
    needed = done + 1 if partial else done
    if isinstance(epochs, (int, np.integer)) and epochs < needed:
        trained = f"{done} epoch(s) and part of epoch {done + 1}" if partial else f"{done} epoch(s)"
        raise RunError(f"--epochs {epochs} is fewer than the {trained} the run in {checkpoint.path.parent} has "
                       f"trained; --epochs is the total: ask for {needed} or more (or leave it out)")


def _graphed_step(trainer):
    """``trainer.train_step`` replayed as CUDA graphs; RunError where it cannot be recorded, before or while
    recording (a step that fails to record has run part of its work: the run stops there)."""
    from .cuda_graph import CudaGraphError, CudaGraphStep
    try:
        graphed = CudaGraphStep(trainer)
    except CudaGraphError as error:
        raise RunError(f"--cuda-graph: {error}; train without --cuda-graph") from None

    def step(batch):
        try:
            return graphed(batch)
        except CudaGraphError as error:
            raise RunError(f"--cuda-graph: {error}; train without --cuda-graph") from error
    return step


def _train_epoch(trainer, loader, epoch, epochs, quiet, callback, stop_signal, save, g_steps=None, step=None):
    """One epoch of steps (``step``, default ``trainer.train_step``); False if it stopped early because
    ``g_steps`` generator updates were reached."""
    from tqdm.auto import tqdm
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", disable=quiet, leave=True, unit="step")
    train_step = step or trainer.train_step
    for step, real in enumerate(bar):
        train_step(real)
        if callback is not None:
            callback(trainer)
        if g_steps and trainer.g_steps >= g_steps and loader.state_dict()["batch"]:   # mid-epoch
            bar.close()
            trainer.flush()
            return False
        if stop_signal() and step < len(loader) - 1:  # at the last step the epoch ends normally
            save(epoch)  # mid-epoch: the loader's state says which batches remain
            raise Interrupted(f"{_signal_name(stop_signal())}: checkpoint saved after step {trainer.d_steps} "
                              f"(in epoch {epoch + 1})", stop_signal())
        if step % 10 == 0:
            shown = {name: key for name, key in (("D", "d_loss"), ("G", "g_loss")) if trainer.history.get(key)}
            bar.set_postfix(**{name: f"{trainer.last(key):.3f}" for name, key in shown.items()})
    trainer.flush()
    return True


def _planned(options):
    """The epoch count shown in progress bars: --epochs, or "?" when --g-steps decides."""
    return "?" if options.get("g_steps") else options["epochs"]


@contextlib.contextmanager
def _stop_requests():
    """While active, Ctrl-C and SIGTERM set a flag (checked between steps and after each epoch's work)
    instead of stopping the process mid-step; yields a function returning the signal number, or None."""
    state = {"signum": None}

    def handler(signum, frame):
        state["signum"] = state["signum"] or signum

    with _signal_handlers(handler):
        yield lambda: state["signum"]


def _final_stop_handler(epochs_done):
    def handler(signum, frame):
        raise Interrupted(f"{_signal_name(signum)} during the final outputs: training is complete and saved "
                          f"({epochs_done} epochs); figures and evaluation may be missing or from the last "
                          f"epoch", signum)
    return handler


@contextlib.contextmanager
def _raise_on_stop(epochs_done):
    """While active (the final outputs and evaluation), Ctrl-C and SIGTERM stop at once."""
    with _signal_handlers(_final_stop_handler(epochs_done)):
        yield


@contextlib.contextmanager
def _signal_handlers(handler):
    """Install ``handler`` for STOP_SIGNALS, restoring the previous handlers afterwards."""
    previous = {}
    for signum in STOP_SIGNALS:
        try:
            previous[signum] = signal.signal(signum, handler)
        except ValueError:  # not the main thread: leave the signals alone
            pass
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _signal_name(signum):
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


def _unlink(path):
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _progress_row(trainer, setup):
    """The fixed noise's samples (a conditional model's with fixed labels 0, 1, 2, ...: the trainer's
    generator is never drawn from, so figures never change the training run)."""
    labels = balanced_labels(len(trainer.fixed_noise), trainer.config.num_classes) if trainer.conditional else None
    return backend.asnumpy(setup.to_unit(trainer.sample(noise=trainer.fixed_noise, labels=labels))).astype(np.float32)


def class_grid_inputs(trainer, columns=CLASS_GRID_COLUMNS):
    """(noise, labels) of the class grid: row k is class k, column j the same fixed noise vector j in every
    row (style held, class varied); the first ``columns`` vectors of the trainer's fixed noise."""
    k = trainer.config.num_classes
    noise = trainer.fixed_noise[:columns]
    tiled = trainer.xp.concatenate([noise] * k)
    labels = trainer.xp.asarray(np.repeat(np.arange(k, dtype=np.int64), len(noise)))
    return tiled, labels


def _class_grid(trainer, setup):
    noise, labels = class_grid_inputs(trainer)
    return backend.asnumpy(setup.to_unit(trainer.sample(noise=noise, labels=labels))).astype(np.float32)


def _write_class_grids(out, class_progress, names):
    """class_grid.png (the last epoch, a labelled row per class) and class_progress.gif (every epoch)."""
    k = len(names)
    last = class_progress[-1]
    columns = len(last) // k
    plots.save_image_strips(out / "class_grid.png", [last[i * columns:(i + 1) * columns] for i in range(k)],
                            labels=names)
    plots.save_progress_gif(out / "class_progress.gif", class_progress, nrow=columns,
                            epochs=list(range(len(class_progress))))


def _write_epoch_outputs(out, trainer, progress, steps_per_epoch, epoch_metrics=()):
    history = history_for_plots(trainer.history, steps_per_epoch)
    plots.write_history_csv(out / "history.csv", trainer.history)
    plots.save_loss_plot(out / "loss.png", history)
    if getattr(trainer.objective, "score_is_probability", True):
        plots.save_d_outputs_plot(out / "d_outputs.png", history)
    else:   # a critic's raw scores (Wasserstein game): no probabilities, no 0.5 line
        plots.save_loss_plot(out / "d_outputs.png", history, keys=("d_real", "d_fake"),
                             title="Critic outputs: mean D(x) on real and D(G(z)) on fake batches")
    if epoch_metrics:
        plots.save_loss_vs_frechet(out / "loss_vs_frechet.png", history, epoch_metrics)
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
    images, labels = data if isinstance(data, tuple) else (data, None)
    D, batch_size = setup.D, min(batch_size, len(images))
    for start in range(0, len(images) - batch_size + 1, batch_size):
        real = backend.to_device(images[start:start + batch_size], trainer.device)
        fake_labels = trainer.sample_labels(batch_size) if trainer.conditional else None
        fake = trainer.sample(noise=trainer.sample_noise(batch_size), labels=fake_labels,
                              generator=trainer.G)   # D's opponent: G, not an average of it
        if binarize_fakes:
            fake = transforms.binarize(fake)
        real_labels = None if labels is None else backend.to_device(labels[start:start + batch_size], trainer.device)
        score = trainer.objective.score
        p_real = score(D.forward(trainer.with_labels(real, real_labels), train=False, keep_cache=False))
        p_fake = score(D.forward(trainer.with_labels(fake, fake_labels), train=False, keep_cache=False))
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
    acc_real = acc_fake = np.zeros(0)
    images = data[0] if isinstance(data, tuple) else data
    if setup.head is not None:   # a critic (Wasserstein game) classifies nothing
        acc_real, acc_fake = discriminator_accuracy(trainer, setup, data, binarize_fakes=binarized)
        plots.save_accuracy_plot(out / "accuracy.png", acc_real, acc_fake,
                                 title=f"Discriminator accuracy, batches of {min(200, len(images))} real + as many "
                                       f"fake, whole data set")
    rng = np.random.default_rng(seed)
    real = setup.to_unit(images[rng.choice(len(images), 36, replace=False)])
    quiz, is_fake = plots.spot_the_fake(backend.asnumpy(real), backend.asnumpy(fakes[:36]), n=36, rng=rng)
    plots.save_spot_the_fake(out / "spot_the_fake.png", out / "spot_the_fake_answers.png", quiz, is_fake)
    summary = {**meta, "d_steps": trainer.d_steps, "g_steps": trainer.g_steps,
               "d_accuracy_real": float(acc_real.mean()) if len(acc_real) else None,
               "d_accuracy_fake": float(acc_fake.mean()) if len(acc_fake) else None,
               "final": {k: trainer.last(k) for k in trainer.history}}
    write_json(out / "summary.json", summary)
    return summary
