"""The ``scratchgan`` command line: gradcheck, train, sample (and evaluate, bench)."""
import argparse
import contextlib
import signal
import sys
import warnings

from . import fastpath
from .backend import DEVICES


def cmd_gradcheck(args):
    from .gradcheck_cases import all_cases, case_names, format_table, run_suite
    cases = all_cases(reference=args.reference)
    if args.only:
        names = {name.lower(): name for name in case_names(cases)}
        unknown = [name for name in args.only if name.lower() not in names]
        if unknown:
            print(f"scratchgan gradcheck: unknown name{'s' * (len(unknown) > 1)} {', '.join(unknown)}; "
                  f"choose from {', '.join(names.values())}", file=sys.stderr)
            return 2
        wanted = {name.lower() for name in args.only}
        cases = [case for case in cases if case.name.lower() in wanted]
    rows = run_suite(cases)
    print(format_table(rows))
    return 0 if all(passed for *_, passed in rows) else 1


def cmd_train(args):
    from pathlib import Path
    from .backend import xp_for
    from .data.images import load_images
    from .gan.run import Interrupted, RunError, describe_checkpoint, prepare_run, train_run
    from .gan.trainer import DivergenceError
    out = Path(args.out or f"runs/{args.recipe}")
    options = {k: getattr(args, k) for k in OPTION_FLAGS if getattr(args, k) is not None}
    run_args = dict(resume=args.resume, epochs=args.epochs, evaluate=not args.no_evaluate,
                    eval_samples=args.eval_samples, keep_checkpoints=args.keep_checkpoints)
    xp_for(args.device)  # DeviceError now, not after loading the data
    if args.cuda_graph and args.device != "gpu":
        raise RunError("--cuda-graph records the GPU step as CUDA graphs; use it with --device gpu")
    # every check that needs no data (options, a new run's image size, --out writable, --resume, --epochs)
    # before loading any, and all but the folder's before --out is created
    _, checkpoint, recipe, full_options = prepare_run(args.recipe, out, **run_args, **options,
                                                      check=lambda recipe, _: _check_new_image_size(args, recipe))
    loader = getattr(recipe.family, "load_training_data", None)   # image-to-image families read their own data
    labels = None
    if loader is not None:
        images, identity, dataset = _family_data(args, recipe, checkpoint, full_options, loader)
    else:
        dataset, image_size, channels = _data_options(args, checkpoint)
        recipe.check_image_size(_image_size(recipe, dataset, image_size))
        images, labels, identity = load_images(dataset, data_dir=args.data_dir, image_size=image_size,
                                               channels=channels, quiet=args.quiet, with_identity=True,
                                               with_labels=True)
    try:
        train_run(args.recipe, out, images, device=args.device, cuda_graph=args.cuda_graph, dataset=dataset,
                  quiet=args.quiet, data_dir=args.data_dir, data_identity=identity,
                  labels=labels if "num_classes" in recipe.defaults else None, **run_args, **options)
        if not args.no_report and recipe.draws_samples:   # the report is on noise-to-image runs
            from .report import write_run_report
            write_run_report(out, data_dir=args.data_dir, images=images, quiet=args.quiet)
    except Interrupted as e:
        print(f"\n{e}. {describe_checkpoint(out / 'checkpoint.npz')}\ncontinue with: scratchgan train "
              f"{args.recipe} --resume --out {out}" + (f" --data-dir {args.data_dir}" if args.data_dir else ""),
              file=sys.stderr)
        return e.exit_code
    except DivergenceError as e:
        print(f"scratchgan train: training diverged: {e}", file=sys.stderr)
        return 3
    print(f"run written to {out}/")
    return 0


def _image_size(recipe, dataset, image_size):
    """The size a run's images will have: --image-size, else the family's first size (image-to-image), else 64
    for an image folder and 28 for MNIST-like data."""
    if image_size is not None:
        return image_size
    if getattr(recipe.family, "load_training_data", None) is not None:
        return recipe.image_sizes[0]
    return 64 if dataset.lower().startswith("folder:") else 28


def _check_new_image_size(args, recipe):
    """A new run's image size fits the recipe (a resumed run keeps its checkpoint's, checked against it later)."""
    if not args.resume:
        recipe.check_image_size(_image_size(recipe, args.dataset or "mnist", args.image_size))


def _data_options(args, checkpoint):
    """(dataset, image_size, channels) to load: the checkpoint's when resuming; asking for others is an error."""
    from .gan.run import RunError
    dataset = None if args.dataset is None else canonical_dataset(args.dataset)
    if checkpoint is None:
        return dataset or "mnist", args.image_size, args.channels
    meta = checkpoint.meta
    recorded = {"dataset": meta.get("dataset", "mnist"), "channels": meta["image_shape"][0],
                "image_size": meta["image_shape"][1]}
    asked = {"dataset": dataset, "channels": args.channels, "image_size": args.image_size}
    changed = [f"--{k.replace('_', '-')} {v} (the run has {recorded[k]})" for k, v in asked.items()
               if v is not None and v != recorded[k]]
    if changed:
        raise RunError(f"cannot change the data when resuming: {', '.join(changed)}; leave them out")
    return recorded["dataset"], recorded["image_size"], recorded["channels"]


def _family_data(args, recipe, checkpoint, options, load):
    """(images, identity, dataset) of an image-to-image family (cyclegan: --dataset-a/-b are options);
    --dataset and --channels do not apply, --image-size is checked first and kept on resume."""
    from .gan.run import RunError
    if args.dataset is not None or args.channels is not None:
        raise ValueError(f"{recipe.name} reads its data from its own options "
                         f"({', '.join(k for k in ('dataset_a', 'dataset_b') if k in options) or 'MNIST'}); "
                         f"--dataset and --channels do not apply")
    recorded = checkpoint.meta["image_shape"][1] if checkpoint is not None else None
    if recorded is not None and args.image_size not in (None, recorded):
        raise RunError(f"cannot change the data when resuming: --image-size {args.image_size} (the run has {recorded})")
    size = recorded or _image_size(recipe, None, args.image_size)
    recipe.check_image_size(size)
    return load(options, args.data_dir, size, args.quiet)


def canonical_dataset(spec):
    """The name a run records for a --dataset: "mnist" for "MNIST", "folder:PATH" kept as given."""
    from .data import parse_dataset_spec
    kind, value = parse_dataset_spec(spec)
    return value if kind == "idx" else spec


def positive_int(text):
    """argparse type: an integer >= 1 (for the demos' counts and sizes)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def cmd_sample(args):
    import numpy as np
    from .fileio import atomic_write, check_writable_file
    from .gan.sampling import sample_classes
    if not args.output.endswith((".npy", ".png")):
        raise ValueError(f"-o must end in .npy or .png, got {args.output}")
    if args.n < 1:
        raise ValueError(f"-n must be at least 1, got {args.n}")
    if args.seed < 0:
        raise ValueError(f"--seed must be a non-negative integer, got {args.seed}")
    check_writable_file(args.output)  # before sampling
    samples, labels, names = sample_classes(args.checkpoint, args.n, args.label, device=args.device, seed=args.seed,
                                            resolution=args.resolution, generator=args.generator)
    if args.output.endswith(".png"):
        from .plots import save_grid, save_image_strips
        classes = [] if labels is None else list(dict.fromkeys(labels.tolist()))
        if len(classes) > 1:   # one row per class, named
            save_image_strips(args.output, [samples[labels == k] for k in classes], labels=[names[k] for k in classes])
        else:
            save_grid(args.output, samples)
    else:
        if samples.shape[1] == 1:
            samples = samples[:, 0]
        with atomic_write(args.output) as f:
            np.save(f, samples)
        if labels is not None:
            with atomic_write(labels_path(args.output)) as f:
                np.save(f, labels)
    print(f"{len(samples)} samples {samples.shape} in [0, 1] written to {args.output}"
          + ("" if labels is None or not args.output.endswith(".npy") else
             f"; their labels to {labels_path(args.output)} (scratchgan evaluate ... --labels)"))
    return 0


def labels_path(samples_path):
    """Where ``scratchgan sample`` writes the labels of conditional samples: out.npy -> out.labels.npy."""
    return samples_path[:-len(".npy")] + ".labels.npy"


# option name -> (type, help); None means "the recipe's default"
OPTION_FLAGS = {
    "z_dim": (int, "latent size (mlp: 28, goodfellow2014 and dcgan: 100; lapgan: the coarsest level's, 100)"),
    "batch_size": (int, "mini-batch size (mlp 200, mlp-improved 100, goodfellow2014 100, dcgan 128, lapgan 64)"),
    "lr": (float, "learning rate of both optimizers"),
    "d_lr": (float, "dcgan: discriminator learning rate, if different"),
    "k": (int, "discriminator steps per generator step (default 1)"),
    "loss": (str, "generator loss: non-saturating (default) or minimax"),
    "label_smoothing": (float, "one-sided label smoothing: real targets 1 - s (e.g. 0.1)"),
    "flip_prob": (float, "probability of flipping each D target (e.g. 0.05)"),
    "dropout": (float, "dropout probability in D (mlp default 0; mlp-improved 0.3; goodfellow2014 0.5)"),
    "g_dropout": (float, "mlp, cgan: dropout probability in G's hidden layers (mlp 0, cgan 0.5)"),
    "seed": (int, "seed for weights, noise and shuffling (default 0)"),
    "ngf": (int, "dcgan: generator width (default 64); lapgan: each level's generator width (default 32)"),
    "ndf": (int, "dcgan: discriminator width (default 64); lapgan: each level's discriminator width "
                  "(default 32)"),
    # -- Wasserstein GANs (issue 17) and run length in generator updates
    "g_steps": (int, "train until N generator updates have been made (across epochs; replaces --epochs; "
                     "raise it with --resume to continue)"),
    "beta2": (float, "wgan-gp: Adam's beta2"),
    "gp": (float, "gradient penalty weight lambda (wgan-gp 10; goodfellow2014; dcgan with --d-norm layernorm "
                  "or none)"),
    "r1": (float, "goodfellow2014, dcgan: R1 penalty weight gamma on real data (dcgan: with --d-norm layernorm "
                  "or none)"),
    "clip": (float, "wgan: clip the critic's weights to [-c, c] (default 0.01)"),
    "d_norm": (str, "dcgan, wgan*: normalisation in D: batchnorm (dcgan), layernorm or none (wgan*)"),
    "g_norm": (str, "wgan*: normalisation in G: batchnorm (default), layernorm or none"),
    "arch": (str, "wgan*: dcgan (DCGAN-28 models, default) or mlp (the tutorial's MLPs, a critic head)"),
    # image-to-image recipes (issue 20)
    "beta1": (float, "dcgan, mlp-improved, wgan-gp, srresnet, srgan, cyclegan: Adam's beta1"),
    "n_blocks": (int, "residual blocks: srresnet/srgan (default 4), cyclegan (default 1)"),
    "width": (int, "srresnet/srgan: feature channels of the generator (default 64); progan: channels at 4x4 and "
                   "8x8, halved at each doubling after (default 64)"),
    "adversarial_weight": (float, "srgan: weight of the adversarial loss (default 1e-3)"),
    "content_layer": (str, "srgan: classifier layer of the content loss: conv1, conv2 (default) or features"),
    "init_from": (str, "srgan: start G from this srresnet checkpoint.npz (the paper's protocol)"),
    "dataset_a": (str, "cyclegan: domain A, emoji-google (default), emoji-twitter or folder:PATH"),
    "dataset_b": (str, "cyclegan: domain B, emoji-twitter (default), emoji-google or folder:PATH"),
    "decoder": (str, "cyclegan: transposed (default: ConvTranspose2d) or upsample (nearest Upsample + Conv2d)"),
    "lambda_cycle": (float, "cyclegan: weight of the cycle-consistency L1 (default 10)"),
    "lambda_identity": (float, "cyclegan: weight of the identity L1, times lambda_cycle (default 0: off)"),
    "pool_size": (int, "cyclegan: generated images kept for the critics (default 50; 0: none)"),
    "decay_epochs": (int, "cyclegan: last epochs over which the learning rate falls to 0 (default: half)"),
    # conditional recipes (docs/conditional.md)
    "embed_dim": (int, "cdcgan/acgan: size of the label embedding joined to z (default 10)"),
    "aux_weight": (float, "acgan: weight of the class log-likelihood in D's and G's losses (default 1)"),
    "fake_class_loss": (lambda text: _boolean(text, "--fake-class-loss"),
                        "acgan: train D's classifier on fakes too, yes or no (acgan yes, acgan-plus no)"),
    "d_conditioning": (str, "cdcgan: how D gets the label: label-channels (cdcgan) or projection (cdcgan-plus)"),
    "momentum": (float, "cgan/goodfellow2014: initial SGD momentum (default 0.5)"),
    # multi-scale GANs (issue 14)
    "phase_images": (int, "progan: real images per growth phase (each fade-in and each stabilisation; default 30000)"),
    "group_size": (int, "progan: samples per minibatch-standard-deviation group (default 4)"),
    "drift": (float, "progan: weight of the drift term eps E[D(x)^2] (default 0.001)"),
    # a better DCGAN-28 recipe (issue 18): dcgan, dcgan-plus
    "g_lr": (float, "dcgan: generator learning rate, if different (with --d-lr: the two time-scale rule)"),
    "ema": (float, "dcgan, cdcgan, acgan: sample from a moving average of G's weights with this beta (e.g. 0.999; 0: off)"),
    "ema_bn": (str, "with --ema: the average's BatchNorm statistics: reestimate (default), copy or average"),
    "spectral_norm": (lambda text: _boolean(text, "--spectral-norm", "on or off"), "dcgan: spectral normalisation of D's convolutions: on or off"),
    "augment": (str, "dcgan: differentiable augmentation of D's input: none, translation, cutout or "
                     "translation,cutout"),
    "lr_schedule": (str, "dcgan: constant (default) or linear (both learning rates decay to 0 over --epochs)"),
    # -- issue 15: Salimans et al.'s fixes, options of the original game's recipes (docs/dynamics.md)
    "minibatch_kernels": (int, "minibatch discrimination in D: number of kernels B (default 0: off; mlp-improved 50)"),
    "minibatch_kernel_dim": (int, "minibatch discrimination: numbers per kernel C (default 5)"),
    "feature_matching": (float, "feature matching: weight of ||mean f(x) - mean f(G(z))||^2 in G's loss "
                                "(0: off; mlp-improved 0.3)"),
    "feature_matching_only": (bool, "feature matching replaces G's loss (the paper's form)"),
    "historical_averaging": (float, "historical averaging: weight of ||theta - mean past theta||^2 (0: off)"),
    "vbn": (int, "virtual batch normalization in G: reference batch size (0: off)"),
}


def _boolean(text, flag, words="yes or no"):
    """argparse type of a switch option: yes/no, on/off, true/false, 1/0 -> True/False."""
    value = {"yes": True, "on": True, "true": True, "1": True,
             "no": False, "off": False, "false": False, "0": False}.get(text.lower())
    if value is None:
        raise argparse.ArgumentTypeError(f"{flag} expects {words}, got {text!r}")
    return value


def add_train_parser(sub):
    from .gan.recipes import RECIPES
    p = sub.add_parser("train", help="train a GAN recipe and write figures and checkpoints into a run directory",
                       description="Train a GAN. Writes checkpoint.npz, history.csv, loss/D-output plots, "
                                   "per-epoch progress (PNG + GIF), a final sample grid, D accuracy and "
                                   "spot-the-fake images into --out. Ctrl-C or SIGTERM saves a checkpoint; "
                                   "--resume continues (see docs/errors.md).")
    p.add_argument("recipe", choices=sorted(RECIPES), help="; ".join(f"{r.name}: {r.summary}" for r in RECIPES.values()))
    p.add_argument("--dataset", help="mnist (default), fashion-mnist or folder:PATH (images); "
                                     "a resumed run uses its own")
    p.add_argument("--data-dir", help="folder holding the dataset's IDX files (default: look up, then download)")
    p.add_argument("--image-size", type=int, help="dcgan: 28, 32 or 64 (default: the data's size; folders 64)")
    p.add_argument("--channels", type=int, choices=(1, 3), help="folder datasets: 1 (grey) or 3 (RGB, default)")
    p.add_argument("--epochs", type=int, help="epochs to train (recipe default: mlp 20, goodfellow2014 20, dcgan 5)")
    p.add_argument("--device", default="cpu", choices=DEVICES, help="cpu (NumPy) or gpu (CuPy)")
    p.add_argument("--cuda-graph", action="store_true",
                   help="GPU: record the training step as CUDA graphs and replay them, one launch per segment "
                        "instead of one per array operation (k = 1, no penalty extensions; "
                        "docs/performance.md)")
    p.add_argument("--out", help="run directory (default runs/RECIPE)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--no-evaluate", action="store_true",
                   help="skip the classifier metrics per epoch and after training (MNIST runs)")
    p.add_argument("--eval-samples", type=int, default=10000,
                   help="samples for the evaluation after training (default 10000, the papers' protocol; "
                        "at least 10; --no-evaluate skips it)")
    p.add_argument("--no-report", action="store_true", help="do not write report.html (see scratchgan report)")
    p.add_argument("--keep-checkpoints", type=int, metavar="N",
                   help="also keep a copy of the checkpoint every N epochs (checkpoint_eNNN.npz), to score or "
                        "sample the run at those epochs")
    for name, (kind, text) in OPTION_FLAGS.items():
        if kind is bool:   # a switch: True when given, else the recipe's default
            p.add_argument("--" + name.replace("_", "-"), dest=name, action="store_true", default=None, help=text)
        else:
            p.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, help=text)
    p.set_defaults(func=cmd_train)


def add_sample_parser(sub):
    p = sub.add_parser("sample", help="draw samples from a checkpoint's generator",
                       description="Draw N samples (values in [0, 1]) from the generator in CHECKPOINT: "
                                   ".npy gets an array (N, 28, 28) for single-channel data, (N, C, H, W) "
                                   "otherwise; .png gets an image grid. A conditional checkpoint (cgan, "
                                   "cdcgan, acgan, ...) draws chosen classes (--label).")
    p.add_argument("checkpoint", help="a checkpoint.npz written by scratchgan train")
    p.add_argument("-n", type=int, default=64, help="number of samples (default 64); per class with --label all")
    p.add_argument("--label", metavar="L", help="conditional models: draw class L (an index 0..K-1 or a class name, "
                                               "e.g. 7 or Sneaker), or all: N of every class in class order "
                                               "(the default; a .png gets one row per class, a .npy its labels "
                                               "beside it as OUT.labels.npy)")
    p.add_argument("--resolution", type=int, help="progan: sample at this earlier resolution (4, 8, 16), one the run "
                                                  "has reached (default: the stage it trained at last); lapgan: "
                                                  "stop the cascade at level 7 or 14 (8 or 16 for 32x32 data)")
    p.add_argument("-o", "--output", required=True, help="output file, .npy or .png")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.add_argument("--device", default="cpu", choices=DEVICES)
    p.add_argument("--generator", choices=("auto", "average", "raw"), default="auto",
                   help="the run's weight average if it kept one (--ema), else G (auto, default); average; "
                        "or raw (G itself)")
    p.set_defaults(func=cmd_sample)


# -- scratchgan report ----------------------------------------------------------------------
def cmd_report(args):
    from pathlib import Path
    from .report import ReportError, build_report
    runs = []
    for path in map(Path, args.runs):
        if path.is_dir():
            runs.append(path)
        else:  # e.g. a stray file matched by `scratchgan report runs/*`
            print(f"scratchgan report: skipping {path}: not a directory", file=sys.stderr)
    if not runs:
        print("scratchgan report: no run directory to report on", file=sys.stderr)
        return 2
    out = Path(args.output or (runs[0] / "report.html" if len(runs) == 1 else "report.html"))
    try:
        build_report(runs, out, data_dir=args.data_dir, seed=args.seed, quiz_tiles=args.quiz_tiles,
                     reference=not args.no_reference)
    except (ReportError, OSError) as e:
        print(f"scratchgan report: {e}", file=sys.stderr)
        return 2
    print(f"report on {len(runs)} run{'s' if len(runs) > 1 else ''} written to {out}")
    return 0


def add_report_parser(sub):
    p = sub.add_parser("report", help="one self-contained HTML page on a run (or comparing runs), with a quiz",
                       description="Write a self-contained HTML page (images embedded, no network) on one run "
                                   "directory, or comparing several: options, dataset, device, time per epoch, "
                                   "final metrics beside the real-data reference row, interactive loss, "
                                   "D-output and metric curves, the progress animation, the sample grid, and a "
                                   "playable spot-the-fake quiz drawn from the checkpoint and the data. "
                                   "See docs/report.md.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories written by scratchgan train")
    p.add_argument("-o", "--output", help="the HTML file (default RUN/report.html for one run, ./report.html "
                                          "for several)")
    p.add_argument("--data-dir", help="folder holding the dataset's files, for the quiz's real images and the "
                                      "reference row (default: $SCRATCHGAN_DATA, the cache; never downloads)")
    p.add_argument("--seed", type=int, default=0, help="seed of the quiz's images (default 0)")
    p.add_argument("--quiz-tiles", type=int, default=24, help="images in the quiz, a third fake (default 24; "
                                                              "0 leaves the quiz out)")
    p.add_argument("--no-reference", action="store_true",
                   help="leave out the real-data reference row (computed once per dataset and n, then cached)")
    p.set_defaults(func=cmd_report)


def build_parser():
    parser = argparse.ArgumentParser(prog="scratchgan", description="GANs with hand-written backprop.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("gradcheck", help="check every layer's and loss's gradients against finite differences",
                       description="Run every layer and loss in several configurations through float64 "
                                   "finite-difference gradient checks and print a table; exits 1 on any failure.")
    p.add_argument("--only", nargs="+", metavar="NAME",
                   help="only these layers/losses (e.g. Conv2d BatchNorm; the table's first column)")
    p.add_argument("--reference", action="store_true",
                   help="check the textbook functions of scratchgan.reference instead, in the same configurations")
    p.set_defaults(func=cmd_gradcheck)
    add_train_parser(sub)
    add_sample_parser(sub)
    add_report_parser(sub)
    from .evaluation.cli import add_commands as add_evaluation_commands
    add_evaluation_commands(sub)
    from .bench import add_commands as add_bench_commands
    add_bench_commands(sub)
    from .gan.translate import add_commands as add_image_to_image_commands   # translate, upscale (issue 20)
    add_image_to_image_commands(sub)
    from .lab.cli import add_commands as add_lab_commands   # issue 15: the dynamics lab
    add_lab_commands(sub)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return run_command(f"scratchgan {args.command}", _checked_environment(args.func), args)


def _checked_environment(command):
    """``command``, after checking the SCRATCHGAN_IM2COL and SCRATCHGAN_FUSED switches (fastpath.py), so a
    misspelt value stops the command before it creates or loads anything, not at the first training step."""
    def checked(*args):
        fastpath.check_switches()
        return command(*args)
    return checked


def run_command(prog, command, *args):
    """``command(*args)``, with the library's own errors and expected OS errors reported as one
    line on stderr (exit status 2) and Ctrl-C as "interrupted" (130), never as a traceback.

    Anything else is a bug and keeps its traceback. Data warnings print as one line too.
    """
    try:
        with _one_line_warnings(), _sigterm_like_ctrl_c():
            return command(*args)
    except KeyboardInterrupt as e:
        signum = getattr(e, "signum", signal.SIGINT)
        print(f"\n{prog}: interrupted ({'Ctrl-C' if signum == signal.SIGINT else signal.Signals(signum).name}); "
              f"files are written atomically: none is half-written", file=sys.stderr)
        return 128 + int(signum)
    except Exception as e:  # noqa: BLE001 - filtered just below
        if not is_expected_error(e):
            raise
        print(f"{prog}: error: {error_text(e)}", file=sys.stderr)
        return 2


def is_expected_error(error):
    """OS errors, bad values (DataError, ChecksumError, ...), memory, and every error class scratchgan defines."""
    own = type(error).__module__.split(".")[0] == "scratchgan"
    return own or isinstance(error, (OSError, ValueError, MemoryError))


def error_text(error):
    """The message of an error, with OS errors as "reason: file" rather than "[Errno 2] ..."."""
    if isinstance(error, OSError) and error.strerror and not type(error).__module__.startswith("scratchgan"):
        return f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    return str(error) or type(error).__name__


class Terminated(KeyboardInterrupt):
    """SIGTERM (what ``kill``, ``timeout`` and job schedulers send), raised like Ctrl-C's KeyboardInterrupt."""
    signum = signal.SIGTERM


@contextlib.contextmanager
def _sigterm_like_ctrl_c():
    """While a command runs, SIGTERM stops it as Ctrl-C does: cleanly, temporary files removed.
    (``train`` installs its own handlers while it trains: it saves a checkpoint first.)"""
    def handler(signum, frame):
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _one_line_warnings():
    """Show warnings (e.g. DataWarning: data that are not the official files) as "warning: ..." lines,
    each distinct one once (a split loaded again, e.g. for the final evaluation, says nothing new)."""
    previous, shown = warnings.showwarning, set()

    def show(message, category, filename, lineno, file=None, line=None):
        if str(message) not in shown:
            shown.add(str(message))
            print(f"warning: {message}", file=file or sys.stderr)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = previous


if __name__ == "__main__":
    sys.exit(main())
