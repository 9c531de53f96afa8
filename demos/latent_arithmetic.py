"""Walks and arithmetic in a trained generator's latent space (DCGAN paper, section 6).

From a checkpoint written by ``scratchgan train`` (any recipe), writes into --out:

    interpolation.png  8 strips: G along the straight line from z_a to z_b (and, for
                       comparison, the spherical path, which keeps |z| typical for N(0, I))
    arithmetic.png     vector arithmetic on mean latents: rows A, B, C, then A - B + C
                       decoded with small noise, as the DCGAN paper does for faces

The three groups come from G's own samples, sorted by the shipped MNIST classifier and
by stroke thickness (ink): A = thick digits of one class, B = thin digits of that class,
C = thin digits of another. If "thickness" is a direction in latent space,
A - B + C decodes to thick digits of the other class.

    python demos/latent_arithmetic.py runs/dcgan28/checkpoint.npz --out runs/dcgan28/latent
"""
import argparse
import sys
from pathlib import Path

import numpy as np

from scratchgan import backend, plots
from scratchgan.cli import run_command
from scratchgan.gan.checkpoint import Checkpoint
from scratchgan.gan.sampling import load_generator


def decode(G, setup, z):
    z = np.asarray(z, dtype=np.float32).reshape(len(z), setup.config.z_dim, *setup.config.noise_shape)
    return backend.asnumpy(setup.to_unit(G.forward(z, train=False, grad=False)))


def slerp(a, b, t):
    """Spherical interpolation between vectors a and b at fraction t."""
    omega = np.arccos(np.clip(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)), -1, 1))
    if omega < 1e-6:
        return (1 - t) * a + t * b
    return (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)


def interpolation_strips(G, setup, rng, pairs=8, steps=10):
    strips, labels = [], []
    ts = np.linspace(0, 1, steps)
    for i in range(pairs):
        a, b = rng.standard_normal((2, setup.config.z_dim))
        path = np.stack([slerp(a, b, t) for t in ts]) if i % 2 else np.stack([(1 - t) * a + t * b for t in ts])
        strips.append(decode(G, setup, path))
        labels.append("slerp" if i % 2 else "linear")
    return strips, labels


def classify_digits(images):
    from scratchgan.evaluation import load_classifier
    return load_classifier().predict(images)


def arithmetic_groups(G, setup, rng, n=4000, per_group=12, classify=classify_digits):
    """Latents of (A) thick class-a, (B) thin class-a and (C) thin class-b samples."""
    z = rng.standard_normal((n, setup.config.z_dim))
    images = decode(G, setup, z)
    labels = classify(images)
    ink = images.reshape(n, -1).mean(axis=1)
    counts = np.bincount(labels, minlength=10)
    class_a, class_b = np.argsort(counts)[::-1][:2]   # the two classes G draws most often
    if counts[class_b] < 2:
        raise SystemExit(f"vector arithmetic needs samples of two classes; this generator draws "
                         f"{int((counts > 0).sum())} class(es) (train it longer)")

    def pick(cls, thick):
        idx = np.where(labels == cls)[0]
        order = idx[np.argsort(ink[idx])]
        return order[-per_group:] if thick else order[:per_group]

    return z, images, (pick(class_a, True), pick(class_a, False), pick(class_b, False)), (class_a, class_b)


def check_digits(path, setup):
    """The arithmetic sorts samples with the MNIST digit classifier: refuse other runs, whose classes it cannot tell."""
    dataset = Checkpoint(path).meta.get("dataset")
    if dataset != "mnist" or tuple(setup.image_shape) != (1, 28, 28):
        raise ValueError(f"{path} is a {dataset!r} run of {'x'.join(map(str, setup.image_shape))} images; the "
                         f"arithmetic sorts samples with the MNIST digit classifier, so it needs a 1x28x28 MNIST "
                         f"run (interpolation.png was written)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--out", default=None, help="output folder (default: beside the checkpoint)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", choices=backend.DEVICES)
    args = parser.parse_args()
    out = Path(args.out or Path(args.checkpoint).parent / "latent")
    G, setup = load_generator(args.checkpoint, args.device)
    rng = np.random.default_rng(args.seed)

    strips, labels = interpolation_strips(G, setup, rng)
    plots.save_image_strips(out / "interpolation.png", strips, labels=labels)
    check_digits(args.checkpoint, setup)

    z, images, (a, b, c), (class_a, class_b) = arithmetic_groups(G, setup, rng)
    result_z = z[a].mean(axis=0) - z[b].mean(axis=0) + z[c].mean(axis=0)
    noisy = result_z + 0.25 * rng.standard_normal((len(a), setup.config.z_dim))
    rows = [images[a], images[b], images[c], decode(G, setup, np.vstack([result_z, noisy[:-1]]))]
    plots.save_image_strips(out / "arithmetic.png", rows,
                            labels=[f"A: thick {class_a}", f"B: thin {class_a}", f"C: thin {class_b}",
                                    "A - B + C"])
    print(f"interpolation.png and arithmetic.png in {out}/ (A, B = class {class_a}, C = class {class_b})")


if __name__ == "__main__":
    sys.exit(run_command("latent_arithmetic.py", main))
