"""Measuring translations against the truth: every held-out emoji has its counterpart in the other style.

``evaluate_translation`` reports, for G: A -> B on held-out a's (and F: B -> A likewise):

- mean L1 (pixels in [0, 1]) from G(a) to the true b, beside two baselines: the untranslated a
  (identity) and a random held-out b (a derangement of the pairs);
- top-5 retrieval: how often the true b is among the 5 held-out b's nearest to G(a) (L1), beside
  the same for a itself, and chance (5 / n);
- the style classifier's verdict: the fraction of G(a) it calls B, beside its accuracy on real
  held-out images of both styles (so "92% taken for B" can be read against how well it knows B),
  and that fraction relative to the fraction of real b's it calls B. The fraction moves with the
  classifier (77.7-91.1 % for one checkpoint over six classifier seeds, docs/image_to_image.md);
  the ratio much less (0.99-1.09, both directions).

The style classifier is a small CNN trained with scratchgan on the training split of both domains
(A = 0, B = 1); ``train_style_classifier`` is deterministic for a seed.
"""
import numpy as np

from .. import backend, losses
from .. import layers as L
from ..data import BatchLoader, transforms
from ..optim import Adam

STYLE_EPOCHS = 15


def style_classifier(size=32, width=16, seed=0):
    """(N, 3, size, size) in [0, 1] -> (N, 2) logits, A = 0, B = 1: strided convolutions with LeakyReLU
    (no BatchNorm: the same function in training and evaluation), a linear read-out."""
    rng = backend.RNG(seed)
    layers, cin = [], 3
    for i in range({32: 3, 64: 4}[size]):
        cout = width * 2 ** i
        layers += [L.Conv2d(cin, cout, 4, 2, 1, rng=rng), L.LeakyReLU(0.2)]
        cin = cout
    return L.Chain(*layers, L.Flatten(), L.Dense(cin * 4 * 4, 2, rng=rng))


def train_style_classifier(options, size, seed=0, device="cpu", epochs=STYLE_EPOCHS, data_dir=None, log=None):
    """The style classifier trained on the training splits of ``options["dataset_a"]`` and ``["dataset_b"]``."""
    from ..data.emoji import load_domain
    a, _, _ = load_domain(options["dataset_a"], "train", data_dir, size, quiet=True)
    b, _, _ = load_domain(options["dataset_b"], "train", data_dir, size, quiet=True)
    return fit_style_classifier(transforms.to_float(a), transforms.to_float(b), seed, device, epochs, log)


def fit_style_classifier(a, b, seed=0, device="cpu", epochs=STYLE_EPOCHS, log=None):
    """Train ``style_classifier`` on images a (label 0) and b (label 1) in [0, 1]: Adam 1e-3, batch 64."""
    net = style_classifier(a.shape[-1], seed=seed).to(device)
    x = np.concatenate([a, b]).astype(np.float32)
    y = np.concatenate([np.zeros(len(a), np.int64), np.ones(len(b), np.int64)])
    loader = BatchLoader((x, y), min(64, len(x)), shuffle=True, drop_last=True, seed=seed, device=device)
    optimizer = Adam(net, lr=1e-3)
    for epoch in range(epochs):
        total = 0.0
        for images, labels in loader:
            loss, grad = losses.softmax_cross_entropy(net.forward(images, train=True), labels)
            net.zero_grad()
            net.backward(grad, input_grad=False)
            optimizer.step()
            total += float(loss)
        if log:
            log(f"style classifier epoch {epoch + 1}/{epochs}: loss {total / len(loader):.4f}")
    return net.eval()


def prob_b(net, images, batch_size=500):
    """The style classifier's P(B) for images in [0, 1] (NumPy float64)."""
    device = backend.device_of(net.named_parameters()[0][1].params["weight"])
    out = []
    for start in range(0, len(images), batch_size):
        x = backend.to_device(np.asarray(images[start:start + batch_size], np.float32), device)
        logits = backend.asnumpy(net.forward(x, train=False, keep_cache=False)).astype(np.float64)
        out.append(1 / (1 + np.exp(logits[:, 0] - logits[:, 1])))
    return np.concatenate(out)


def l1_distances(x, y):
    """Mean absolute difference of every x[i] to every y[j]: (len(x), len(y))."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    y = np.asarray(y, np.float64).reshape(len(y), -1)
    return np.stack([np.abs(row - y).mean(axis=1) for row in x])


def top_k_rate(distances, k=5):
    """How often entry i's own counterpart (column i) is among its k nearest columns."""
    true = np.diag(distances)[:, None]
    ranks = (distances < true).sum(axis=1)    # strictly nearer ones
    return float((ranks < k).mean())


def derangement(n, seed=0):
    """A random permutation without fixed points (each a paired with another emoji's b)."""
    rng = np.random.default_rng(seed)
    while True:
        p = rng.permutation(n)
        if n < 2 or not (p == np.arange(n)).any():
            return p


def direction_scores(source, target, translated, classifier, to_b, seed=0):
    """The scores of one direction: source -> translated, compared with the true target."""
    d_translated, d_source = l1_distances(translated, target), l1_distances(source, target)
    random_target = target[derangement(len(target), seed)]
    def called_target(images):
        p = prob_b(classifier, images)
        return float(((p > 0.5) if to_b else (p <= 0.5)).mean())
    taken, real = called_target(translated), called_target(target)
    return {"l1": float(np.diag(d_translated).mean()), "l1_identity": float(np.diag(d_source).mean()),
            "l1_random": float(np.abs(np.asarray(source, np.float64) - random_target).mean()),
            "top5": top_k_rate(d_translated), "top5_identity": top_k_rate(d_source),
            "top5_chance": min(1.0, 5 / len(target)),
            "style_target": taken, "style_target_untranslated": called_target(source),
            "style_target_real": real, "style_target_vs_real": taken / real if real else float("nan")}


def evaluate_translation(a, b, g_a, f_b, classifier, seed=0):
    """Scores of G (a -> b) and F (b -> a) on paired held-out images in [0, 1] (module docstring)."""
    called_a, called_b = prob_b(classifier, a) <= 0.5, prob_b(classifier, b) > 0.5
    accuracy = float(np.concatenate([called_a, called_b]).mean())
    return {"n": len(a), "style_classifier_accuracy": accuracy,
            "style_recall_a": float(called_a.mean()), "style_recall_b": float(called_b.mean()),
            "G": direction_scores(a, b, g_a, classifier, True, seed),
            "F": direction_scores(b, a, f_b, classifier, False, seed + 1)}


def format_translation_table(row):
    lines = [f"held-out pairs: {row['n']}; style classifier accuracy on real held-out images: "
             f"{100 * row['style_classifier_accuracy']:.1f}% (A called A {100 * row['style_recall_a']:.1f}%, "
             f"B called B {100 * row['style_recall_b']:.1f}%)",
             "| direction | L1 to truth | untranslated | random | top-5 | top-5 untranslated | chance | "
             "taken for target style | untranslated | vs real target images |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, label in (("G", "G: A -> B"), ("F", "F: B -> A")):
        s = row[name]
        lines.append(f"| {label} | {s['l1']:.4f} | {s['l1_identity']:.4f} | {s['l1_random']:.4f} | "
                     f"{100 * s['top5']:.1f}% | {100 * s['top5_identity']:.1f}% | {100 * s['top5_chance']:.1f}% | "
                     f"{100 * s['style_target']:.1f}% | {100 * s['style_target_untranslated']:.1f}% | "
                     f"{s['style_target_vs_real']:.2f}x |")
    return "\n".join(lines)
