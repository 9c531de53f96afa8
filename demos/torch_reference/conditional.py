"""The ``cdcgan`` and ``acgan`` recipes in PyTorch, as an independent reference (docs/conditional.md).

The same models, layer for layer (tests/test_conditional_torch.py loads the same weights into both
and compares one training step in float64):

- G (both): [z (N, 100, 1, 1), Embedding(10, 10)(y) as (N, 10, 1, 1)] joined on channels -> DCGAN-28's
  generator (ConvTranspose k7 -> BatchNorm -> ReLU -> ConvTranspose k4 s2 -> BatchNorm -> ReLU ->
  ConvTranspose k4 s2 -> tanh), no conv biases;
- D of ``cdcgan``: the image with 10 one-hot label planes joined on channels -> DCGAN-28's discriminator
  (Conv k4 s2 -> LeakyReLU 0.2 -> Conv k4 s2 -> BatchNorm -> LeakyReLU 0.2 -> Conv k7 -> logit);
- D of ``acgan``: DCGAN-28's discriminator on the image alone, its last convolution doubled into a
  real/fake head (1 logit) and a class head (10 logits);
- D of ``cdcgan-plus``: the projection discriminator (Miyato & Koyama 2018) on DCGAN-28's features
  h(x) (the 128 x 7 x 7 map before the last convolution, flattened): h . w + h . V[y], w and V drawn
  N(0, 0.02);
- ``acgan-plus``: ``acgan`` whose D trains its class head on real images only (no class loss on fakes
  in D's loss; G's loss keeps it).

The same initialisation (conv weights N(0, 0.02), BatchNorm weights N(1, 0.02) and biases 0, the
embedding N(0, 1), PyTorch's default and scratchgan's), optimizer (Adam, lr 2e-4, ``cdcgan-plus``
4e-4, betas (0.5, 0.999)), batch (128, the last partial batch dropped), losses (binary cross-entropy
on logits, non-saturating G; AC-GAN adds the class cross-entropy with weight 1 to D's loss on real
and fake (``acgan-plus``: on real only) and to G's loss) and step as scratchgan's trainer: fakes get
labels drawn uniformly; G runs once per step; D is updated on the real batch and the fake batch (two
passes: BatchNorm); then G is updated through the *updated* D on the same fake batch. The data are
scratchgan's: the same digits in the same batch order (``BatchLoader`` with the same seed). Noise
and fake labels come from torch's generator.

After every epoch the script records the per-epoch metrics scratchgan's runs record (metrics.csv:
2,000 samples drawn for the classes in turn, Fréchet distance against all training images,
classifier score, coverage, conditional accuracy, with scratchgan's MNIST classifier). At each of
``--save-at`` epochs it writes 10,000 samples from G in eval mode, ``samples_<epoch>.npy``
(N, 28, 28) in [0, 1], drawn for the classes 0, 1, ..., 9 in turn, and their labels,
``labels_<epoch>.npy``, which ``scratchgan evaluate`` scores.

``--ema BETA`` also keeps scratchgan's moving average of G's weights (``WeightAverage``: the same
warm-up, the same BatchNorm re-estimation), records its per-epoch metrics as ``ema_`` columns and
writes its samples as ``samples_<epoch>_average.npy`` (same labels):

    python demos/torch_reference/conditional.py cdcgan --data-dir /work/shared/data/mnist \\
        --out runs/torch_cdcgan --epochs 30 --save-at 10 30
    scratchgan evaluate runs/torch_cdcgan/samples_10.npy --labels runs/torch_cdcgan/labels_10.npy \\
        --data-dir /work/shared/data/mnist

PyTorch is imported inside the functions (scratchgan never needs it).
"""
import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

RECIPES = ("cdcgan", "acgan", "cdcgan-plus", "acgan-plus")
WARMUP = 10                                   # as scratchgan/gan/averaging.py
REESTIMATE_SEED, REESTIMATE_BATCHES, REESTIMATE_BATCH = 7, 20, 128


def generator(num_classes=10, z_dim=100, embed_dim=10, ngf=64, channels=1):
    import torch
    import torch.nn as nn

    class ConditionalGenerator(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(num_classes, embed_dim)
            self.net = nn.Sequential(
                nn.ConvTranspose2d(z_dim + embed_dim, 4 * ngf, 7, 1, 0, bias=False), nn.BatchNorm2d(4 * ngf), nn.ReLU(),
                nn.ConvTranspose2d(4 * ngf, 2 * ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * ngf), nn.ReLU(),
                nn.ConvTranspose2d(2 * ngf, channels, 4, 2, 1, bias=False), nn.Tanh())

        def forward(self, z, y):
            label = self.embed(y).view(len(y), -1, 1, 1)
            return self.net(torch.cat([z, label], dim=1))

    return ConditionalGenerator()


def _trunk(in_channels, ndf):
    import torch.nn as nn
    return [nn.Conv2d(in_channels, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
            nn.Conv2d(ndf, 2 * ndf, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * ndf), nn.LeakyReLU(0.2)]


def label_channel_discriminator(num_classes=10, ndf=64, channels=1):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class LabelChannelDiscriminator(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(*_trunk(channels + num_classes, ndf), nn.Conv2d(2 * ndf, 1, 7, 1, 0, bias=False))

        def forward(self, x, y):
            planes = F.one_hot(y, num_classes).to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[2:])
            return self.net(torch.cat([x, planes], dim=1)).flatten(1)

    return LabelChannelDiscriminator()


def auxiliary_classifier_discriminator(num_classes=10, ndf=64, channels=1):
    import torch.nn as nn

    class AuxiliaryClassifierDiscriminator(nn.Module):
        def __init__(self):
            super().__init__()
            self.trunk = nn.Sequential(*_trunk(channels, ndf))
            self.source = nn.Conv2d(2 * ndf, 1, 7, 1, 0, bias=False)
            self.classes = nn.Conv2d(2 * ndf, num_classes, 7, 1, 0, bias=False)

        def forward(self, x, y):   # reads (x, y) like every conditional D, judges x alone
            h = self.trunk(x)
            return self.source(h).flatten(1), self.classes(h).flatten(1)

    return AuxiliaryClassifierDiscriminator()


def projection_discriminator(num_classes=10, ndf=64, channels=1, size=28):
    import torch.nn as nn

    features = 2 * ndf * (size // 4) ** 2

    class ProjectionDiscriminator(nn.Module):
        def __init__(self):
            super().__init__()
            self.trunk = nn.Sequential(*_trunk(channels, ndf), nn.Flatten())
            self.linear = nn.Linear(features, 1, bias=False)       # h . w
            self.embed = nn.Embedding(num_classes, features)       # V, one row per class

        def forward(self, x, y):
            h = self.trunk(x)
            return self.linear(h) + (h * self.embed(y)).sum(dim=1, keepdim=True)

        def reset_projection(self):
            nn.init.normal_(self.linear.weight, 0.0, 0.02)
            nn.init.normal_(self.embed.weight, 0.0, 0.02)

    return ProjectionDiscriminator()


def discriminator(recipe, num_classes=10, ndf=64):
    """D of ``recipe`` (not initialised)."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; expected one of {RECIPES}")
    if recipe == "cdcgan":
        return label_channel_discriminator(num_classes, ndf)
    if recipe == "cdcgan-plus":
        return projection_discriminator(num_classes, ndf)
    return auxiliary_classifier_discriminator(num_classes, ndf)


def learning_rate(recipe):
    """Both Adam learning rates of ``recipe``: 4e-4 for ``cdcgan-plus``, else DCGAN's 2e-4."""
    return 4e-4 if recipe == "cdcgan-plus" else 2e-4


def fake_class_weight(recipe, aux_weight=1.0):
    """The class loss's weight in D's loss on fakes: ``aux_weight``, or 0 for ``acgan-plus``."""
    return 0.0 if recipe == "acgan-plus" else aux_weight


def build(recipe, num_classes=10):
    """(G, D) of ``recipe``, initialised as scratchgan's recipes."""
    D = discriminator(recipe, num_classes)
    G = generator(num_classes)
    initialise(G)
    initialise(D)
    return G, D


def initialise(model):
    """DCGAN's initialisation, as scratchgan's recipes: conv weights N(0, 0.02), BatchNorm weights N(1, 0.02),
    biases 0; G's embedding keeps PyTorch's N(0, 1) (scratchgan's Embedding default); a projection D's w
    and V N(0, 0.02)."""
    import torch
    import torch.nn as nn
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                module.weight.normal_(0.0, 0.02)
            elif isinstance(module, nn.BatchNorm2d):
                module.weight.normal_(1.0, 0.02)
                module.bias.zero_()
            elif isinstance(module, nn.Embedding):
                module.weight.normal_(0.0, 1.0)
        if hasattr(model, "reset_projection"):   # the projection's w and V: N(0, 0.02), as scratchgan's Projection
            model.reset_projection()


def optimizers(G, D, lr=2e-4, betas=(0.5, 0.999)):
    import torch
    return torch.optim.Adam(G.parameters(), lr=lr, betas=betas), torch.optim.Adam(D.parameters(), lr=lr, betas=betas)


def d_loss(out, real, labels, aux_weight=1.0):
    """BCE on the logit against 1 (real) or 0 (fake); AC-GAN's D output (source, classes) adds the class CE."""
    import torch
    import torch.nn.functional as F
    source, classes = out if isinstance(out, tuple) else (out, None)
    target = torch.full_like(source.view(-1), 1.0 if real else 0.0)
    loss = F.binary_cross_entropy_with_logits(source.view(-1), target)
    return loss if classes is None else loss + aux_weight * F.cross_entropy(classes, labels)


def train_step(G, D, opt_g, opt_d, real, labels, z, fake_labels, aux_weight=1.0, fake_aux_weight=None):
    """One step of scratchgan's trainer (k = 1): fake = G(z, y_fake); D's update on the real and the fake
    batch; G's update through the updated D on the same fakes (non-saturating). D's parameters are frozen
    during G's turn, so afterwards D's .grad hold D's step and G's .grad G's step. ``fake_aux_weight``
    (default ``aux_weight``) weighs the class loss in D's loss on fakes. Returns (D loss, G loss)."""
    fake_aux_weight = aux_weight if fake_aux_weight is None else fake_aux_weight
    fake = G(z, fake_labels)
    opt_d.zero_grad()
    loss_d = d_loss(D(real, labels), True, labels, aux_weight) + d_loss(D(fake.detach(), fake_labels), False,
                                                                     fake_labels, fake_aux_weight)
    loss_d.backward()
    opt_d.step()
    for p in D.parameters():
        p.requires_grad_(False)
    opt_g.zero_grad()
    loss_g = d_loss(D(fake, fake_labels), True, fake_labels, aux_weight)
    loss_g.backward()
    opt_g.step()
    for p in D.parameters():
        p.requires_grad_(True)
    return loss_d.item(), loss_g.item()


def draw(G, n, num_classes, seed, z_dim=100, batch_size=500):
    """n samples in [0, 1] (N, 28, 28) from G in eval mode for the labels 0, 1, ..., K-1 in turn, from noise
    of a generator seeded with ``seed`` (the training's generator is left alone); (samples, labels)."""
    import torch
    labels = np.arange(n, dtype=np.int64) % num_classes
    noise = torch.Generator().manual_seed(seed)
    G.eval()
    out = []
    with torch.no_grad():
        for start in range(0, n, batch_size):
            y = torch.from_numpy(labels[start:start + batch_size])
            z = torch.randn(len(y), z_dim, 1, 1, generator=noise)
            out.append(((G(z, y) + 1) / 2).clamp(0, 1)[:, 0].numpy())
    G.train()
    return np.concatenate(out).astype(np.float32), labels


class WeightAverage:
    """scratchgan's GeneratorEMA (gan/averaging.py, bn="reestimate"): after every G step each float
    parameter and buffer moves toward G's, avg += (1 - b_t)(theta - avg), b_t = min(beta, (1 + t) / (10 + t));
    to sample, a copy of the average gets BatchNorm statistics re-estimated in training mode on 20
    batches of 128 (labels 0, 1, ..., K-1 in turn; torch's momentum None: the mean of the batches' means
    and unbiased variances)."""

    def __init__(self, G, beta):
        import copy
        self.model, self.beta, self.updates = copy.deepcopy(G), beta, 0

    def update(self, G):
        import torch
        decay = min(self.beta, (1 + self.updates) / (WARMUP + self.updates))
        with torch.no_grad():
            for average, value in zip(self.model.state_dict().values(), G.state_dict().values()):
                if average.dtype.is_floating_point:
                    average += (1 - decay) * (value - average)
                else:
                    average.copy_(value)
        self.updates += 1

    def sampler(self, num_classes=10, z_dim=100, noise=None):
        """The averaged G in eval mode, its BatchNorm statistics re-estimated. ``noise(n)``: n noise
        vectors (default: torch's generator seeded REESTIMATE_SEED)."""
        import copy
        import torch
        if noise is None:
            generator = torch.Generator().manual_seed(REESTIMATE_SEED)
            noise = lambda n: torch.randn(n, z_dim, 1, 1, generator=generator)   # noqa: E731
        G = copy.deepcopy(self.model).train()
        for module in G.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.reset_running_stats()
                module.momentum = None
        labels = torch.arange(REESTIMATE_BATCH) % num_classes
        with torch.no_grad():
            for _ in range(REESTIMATE_BATCHES):
                G(noise(REESTIMATE_BATCH), labels)
        return G.eval()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("recipe", choices=RECIPES)
    p.add_argument("--data-dir", help="folder holding the MNIST files (as scratchgan's --data-dir)")
    p.add_argument("--dataset", default="mnist", choices=("mnist", "fashion-mnist"))
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--save-at", type=int, nargs="*", default=[], help="epochs after which to write samples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, help="both Adam learning rates (default: the recipe's, learning_rate())")
    p.add_argument("--limit", type=int, help="train on the first N images only (a quick check)")
    p.add_argument("--classifier", help="classifier weights for the per-epoch metrics (default: the shipped MNIST one)")
    p.add_argument("--ema", type=float, default=0.0,
                   help="also keep a moving average of G's weights with this beta (as scratchgan's --ema; 0: off)")
    args = p.parse_args(argv)

    import torch
    from scratchgan.data import BatchLoader, load_images, to_tanh_range
    from scratchgan.evaluation import load_classifier, quick_metrics, real_feature_stats

    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    images, labels = load_images(args.dataset, data_dir=args.data_dir, with_labels=True)
    images, labels = images[:args.limit], labels[:args.limit]
    classifier = load_classifier(args.classifier, dataset=args.dataset)
    real_stats = real_feature_stats(classifier, images)
    G, D = build(args.recipe)
    opt_g, opt_d = optimizers(G, D, lr=args.lr or learning_rate(args.recipe))
    loader = BatchLoader((to_tanh_range(images), labels), 128, shuffle=True, drop_last=True, seed=args.seed)
    average = WeightAverage(G, args.ema) if args.ema else None
    history, metrics = [], []
    started = time.time()
    for epoch in range(1, args.epochs + 1):
        t0 = time.time()
        for real, y in loader:
            real, y = torch.from_numpy(real), torch.from_numpy(y)
            z = torch.randn(len(y), 100, 1, 1)
            fake_labels = torch.randint(0, 10, (len(y),))
            history.append(train_step(G, D, opt_g, opt_d, real, y, z, fake_labels,
                                          fake_aux_weight=fake_class_weight(args.recipe)))
            if average is not None:
                average.update(G)
        seconds = time.time() - t0
        samples, drawn = draw(G, 2000, 10, seed=10_000 + epoch)
        row = {"epoch": epoch, **quick_metrics(samples, classifier, real_stats, labels=drawn),
               "reference_n": len(images), "seconds": round(seconds, 1)}
        sampler = average.sampler() if average is not None else None
        if sampler is not None:        # the same noise and labels as G's row
            samples, drawn = draw(sampler, 2000, 10, seed=10_000 + epoch)
            row.update({f"ema_{key}": value for key, value in
                        quick_metrics(samples, classifier, real_stats, labels=drawn).items()})
        metrics.append(row)
        print(json.dumps(row), flush=True)
        if epoch in args.save_at:
            samples, drawn = draw(G, 10000, 10, seed=10_000)
            np.save(out / f"samples_{epoch}.npy", samples)
            np.save(out / f"labels_{epoch}.npy", drawn)
            if sampler is not None:
                np.save(out / f"samples_{epoch}_average.npy", draw(sampler, 10000, 10, seed=10_000)[0])
    with open(out / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(metrics[0]))
        writer.writeheader()
        writer.writerows(metrics)
    with open(out / "history.csv", "w", newline="") as f:
        csv.writer(f).writerows([("d_loss", "g_loss"), *history])
    print(f"{args.recipe}: {args.epochs} epochs in {time.time() - started:.0f} s; written to {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
