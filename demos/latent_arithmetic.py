"""Walks and arithmetic in a trained generator's latent space (DCGAN paper, section 6).

From a checkpoint written by ``scratchgan train`` (any recipe), writes into --out:

    interpolation.png  8 strips: G along the straight line from z_a to z_b (and, for
                       comparison, the spherical path, which keeps |z| typical for N(0, I))
    arithmetic.png     vector arithmetic on mean latents: rows A, B, C, then A - B + C
                       decoded with small noise, as the DCGAN paper does for faces

The three groups come from G's own samples, sorted into classes and by stroke thickness
(ink): A = thick digits of one class, B = thin digits of that class, C = thin digits of
another. If "thickness" is a direction in latent space, A - B + C decodes to thick digits
of the other class. The classes are the shipped MNIST classifier's predictions
(``--groups classifier``, for MNIST generators) or, with ``--groups kmeans``, k-means
clusters of the samples' pixels: no classifier needed, for any data set.

    python demos/latent_arithmetic.py runs/dcgan28/checkpoint.npz --out runs/dcgan28/latent
    python demos/latent_arithmetic.py runs/fashion/checkpoint.npz --groups kmeans
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
    return backend.asnumpy(setup.to_unit(G.forward(z, train=False, keep_cache=False)))


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


def kmeans_clusters(images, k=10, iterations=20, seed=0):
    """Cluster labels of the samples' pixels: Lloyd's k-means from a k-means++ start.

    Fewer than k clusters when the samples have fewer distinct values (a collapsed G).
    """
    from scratchgan.evaluation.metrics import squared_distances
    x = images.reshape(len(images), -1).astype(np.float64)
    rng = np.random.default_rng(seed)
    centres = x[rng.integers(len(x))][None]
    while len(centres) < k:   # k-means++: each next centre drawn with probability ~ squared distance
        d2 = squared_distances(x, centres).min(axis=1)
        if d2.sum() <= 0:
            break
        centres = np.vstack([centres, x[rng.choice(len(x), p=d2 / d2.sum())]])
    for _ in range(iterations):
        labels = squared_distances(x, centres).argmin(axis=1)
        centres = np.stack([x[labels == j].mean(axis=0) if (labels == j).any() else centres[j]
                            for j in range(len(centres))])
    return squared_distances(x, centres).argmin(axis=1)


GROUPINGS = {"classifier": classify_digits, "kmeans": kmeans_clusters}


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
    parser.add_argument("--groups", default="classifier", choices=sorted(GROUPINGS),
                        help="classes from the shipped MNIST classifier (default) or k-means clusters of pixels")
    parser.add_argument("--n", type=int, default=4000, help="samples drawn to form the groups (default 4000)")
    args = parser.parse_args()
    out = Path(args.out or Path(args.checkpoint).parent / "latent")
    G, setup = load_generator(args.checkpoint, args.device)
    rng = np.random.default_rng(args.seed)

    strips, labels = interpolation_strips(G, setup, rng)
    plots.save_image_strips(out / "interpolation.png", strips, labels=labels)
    check_digits(args.checkpoint, setup)

    z, images, (a, b, c), (class_a, class_b) = arithmetic_groups(G, setup, rng, n=args.n,
                                                                 classify=GROUPINGS[args.groups])
    result_z = z[a].mean(axis=0) - z[b].mean(axis=0) + z[c].mean(axis=0)
    noisy = result_z + 0.25 * rng.standard_normal((len(a), setup.config.z_dim))
    rows = [images[a], images[b], images[c], decode(G, setup, np.vstack([result_z, noisy[:-1]]))]
    kind = "class" if args.groups == "classifier" else "cluster"
    plots.save_image_strips(out / "arithmetic.png", rows,
                            labels=[f"A: thick {kind} {class_a}", f"B: thin {kind} {class_a}",
                                    f"C: thin {kind} {class_b}", "A - B + C"])
    print(f"interpolation.png and arithmetic.png in {out}/ (A, B = {kind} {class_a}, C = {kind} {class_b})")


if __name__ == "__main__":
    sys.exit(run_command("latent_arithmetic.py", main))
