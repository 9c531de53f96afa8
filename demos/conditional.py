"""A conditional GAN's two pictures: classes against styles, and a walk from one class to another.

From a conditional checkpoint written by ``scratchgan train cgan|cdcgan|acgan ...`` (or, without one,
after training such a recipe here), writes into --out:

    class_style.png         one row per class, one column per latent vector z: along a column the
                            style (z) is held and only the class changes; along a row, one class in
                            many styles
    label_interpolation.png at a fixed z, the class code walked from one class to the next
                            (0 -> 1, 1 -> 2, ...): the label's representation where it joins z
                            (the embedding in cdcgan/acgan, the 1000-unit label layer in cgan)
                            interpolated linearly, t = 0 .. 1

    python demos/conditional.py runs/cdcgan/checkpoint.npz --out runs/cdcgan/demo
    python demos/conditional.py --train cdcgan --epochs 5 --data-dir /work/shared/data/mnist --out runs/cdemo
"""
import argparse
import sys
from pathlib import Path

import numpy as np

from scratchgan import backend, plots
from scratchgan import layers as L
from scratchgan.cli import run_command
from scratchgan.gan.sampling import conditioning, load_generator
from scratchgan.gan.trainer import draw_noise


def split_generator(G):
    """(noise branch, label branch, the rest as a Chain) of a conditional G built as
    Chain(Parallel(noise branch, label branch), Concat, ...), as every conditional recipe's is."""
    if not (isinstance(G, L.Chain) and len(G) > 2 and isinstance(G[0], L.Parallel) and len(G[0]) == 2
            and isinstance(G[1], L.Concat)):
        raise ValueError("label interpolation needs a generator of the form Chain(Parallel(z branch, label branch), "
                         "Concat(), ...), as the conditional recipes build")
    return G[0][0], G[0][1], G[2:]


def generate(G, z, label_codes, axis):
    """G's output for noise z and label representations ``label_codes`` given directly (eval mode)."""
    noise_branch, _, rest = split_generator(G)
    h = noise_branch.forward(z, train=False, keep_cache=False)
    xp = backend.get_xp(h)
    return rest.forward(xp.concatenate([h, label_codes.astype(h.dtype)], axis=axis), train=False, keep_cache=False)


def label_interpolation(G, setup, z, a, b, steps=9):
    """G(z, code(a) (1 - t) + code(b) t) for t = 0 .. 1 in ``steps``: images in [0, 1]."""
    _, label_branch, _ = split_generator(G)
    xp = backend.get_xp(z)
    codes = label_branch.forward(xp.asarray([a, b]), train=False, keep_cache=False)
    ts = np.linspace(0, 1, steps).astype(codes.dtype).reshape(-1, *[1] * (codes.ndim - 1))
    path = (1 - ts) * backend.asnumpy(codes[:1]) + ts * backend.asnumpy(codes[1:])
    zs = xp.concatenate([z[None]] * steps)
    return backend.asnumpy(setup.to_unit(generate(G, zs, xp.asarray(path), G[1].axis)))


def class_style_grid(G, setup, classes, columns, seed, device="cpu"):
    """(rows of images, one per class) for ``columns`` latent vectors shared by every row, and those vectors."""
    xp = backend.xp_for(device)
    config = setup.config
    z = draw_noise(backend.RNG(seed), (columns, config.z_dim, *config.noise_shape), config.noise, np.float32, xp)
    rows = []
    for k in range(classes):
        labels = xp.full(columns, k, dtype=np.int64)
        rows.append(backend.asnumpy(setup.to_unit(G.forward((z, labels), train=False, keep_cache=False))))
    return rows, z


def train_first(args):
    """Train ``args.train`` for ``args.epochs`` epochs into ``args.out``/run; the path of its checkpoint."""
    from scratchgan.data import load_images
    from scratchgan.gan.run import train_run
    images, labels = load_images(args.dataset, data_dir=args.data_dir, with_labels=True)
    run = Path(args.out) / "run"
    train_run(args.train, run, images, labels=labels, epochs=args.epochs, device=args.device, dataset=args.dataset,
              data_dir=args.data_dir, evaluate=False, quiet=False, batch_size=args.batch_size)
    return run / "checkpoint.npz"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", nargs="?", help="a conditional checkpoint (or use --train)")
    parser.add_argument("--train", choices=("cgan", "cdcgan", "acgan", "cdcgan-plus", "acgan-plus"),
                        help="train this recipe first (into OUT/run)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs for --train (default 5)")
    parser.add_argument("--batch-size", type=int, help="batch size for --train (default: the recipe's)")
    parser.add_argument("--dataset", default="mnist", choices=("mnist", "fashion-mnist"))
    parser.add_argument("--data-dir", help="folder holding the dataset's files (for --train)")
    parser.add_argument("--out", default=None, help="output folder (default: beside the checkpoint)")
    parser.add_argument("--columns", type=int, default=10, help="styles (latent vectors) per row (default 10)")
    parser.add_argument("--steps", type=int, default=9, help="interpolation steps per walk (default 9)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", choices=backend.DEVICES)
    args = parser.parse_args()
    if (args.checkpoint is None) == (args.train is None):
        raise ValueError("give a checkpoint or --train RECIPE (one of them)")
    if args.columns < 1 or args.steps < 2 or args.epochs < 1:
        raise ValueError("--columns and --epochs must be at least 1, --steps at least 2")
    if args.train and not args.out:
        raise ValueError("--train needs --out (the run goes into OUT/run)")
    checkpoint = args.checkpoint or train_first(args)
    out = Path(args.out or Path(checkpoint).parent / "conditional")
    from scratchgan.gan.checkpoint import Checkpoint
    classes = conditioning(Checkpoint(checkpoint))
    if classes is None:
        raise ValueError(f"{checkpoint} is an unconditional model: it has no classes to draw")
    G, setup = load_generator(checkpoint, args.device)
    names, k = classes["class_names"], classes["num_classes"]

    rows, z = class_style_grid(G, setup, k, args.columns, args.seed, args.device)
    plots.save_image_strips(out / "class_style.png", rows, labels=names)
    walks = [label_interpolation(G, setup, z[i % len(z)], i, (i + 1) % k, args.steps) for i in range(k)]
    plots.save_image_strips(out / "label_interpolation.png", walks,
                            labels=[f"{names[i]} -> {names[(i + 1) % k]}" for i in range(k)])
    print(f"class_style.png and label_interpolation.png in {out}/ ({k} classes: {', '.join(names)})")


if __name__ == "__main__":
    sys.exit(run_command("conditional.py", main))
