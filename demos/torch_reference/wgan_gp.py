"""The `wgan-gp-paper` recipe (and `wgan-gp` with its options) in PyTorch, as an independent reference.

The same models (DCGAN-28 generator with BatchNorm, critic without BatchNorm), initialisation
(N(0, 0.02) convolution weights, BatchNorm weights N(1, 0.02)), optimizer (Adam, lr 1e-4, betas
(0, 0.9) by default), penalty (lambda 10 on interpolates, autograd's double backward), 5 critic
steps per generator step, batch 64, and the same step as scratchgan's trainer: G runs once per
critic step; every 5th critic step the generator is updated through the *updated* critic on the
same fake batch. The data are scratchgan's: the same digits, in the same batch order
(``BatchLoader`` with the same seed). Noise and interpolation weights come from torch's generator.

At each of ``--save-at`` generator steps, 10,000 samples from G in eval mode are written as
``samples_<steps>.npy`` (N, 28, 28) in [0, 1], scored with ``scratchgan evaluate``; the per-step
history (critic loss, Wasserstein estimate, penalty) goes to ``history.csv``.

    python demos/torch_reference/wgan_gp.py --data-dir /work/shared/data/mnist --out runs/torch_wgan_gp \\
        --save-at 780 2340
    scratchgan evaluate runs/torch_wgan_gp/samples_780.npy --data-dir /work/shared/data/mnist

PyTorch is imported inside the functions (scratchgan never needs it); tests/test_wasserstein_torch.py
imports ``critic_step`` and the model builders to compare one critic step with scratchgan's in float64.
"""
import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np


def generator(z_dim=100, ngf=64, norm="batchnorm"):
    import torch.nn as nn

    def normalisation(channels, side):
        return {"batchnorm": [nn.BatchNorm2d(channels)], "layernorm": [nn.LayerNorm((channels, side, side))],
                "none": []}[norm]

    return nn.Sequential(nn.ConvTranspose2d(z_dim, 4 * ngf, 7, 1, 0, bias=False), *normalisation(4 * ngf, 7),
                         nn.ReLU(), nn.ConvTranspose2d(4 * ngf, 2 * ngf, 4, 2, 1, bias=False),
                         *normalisation(2 * ngf, 14), nn.ReLU(),
                         nn.ConvTranspose2d(2 * ngf, 1, 4, 2, 1, bias=False), nn.Tanh())


def critic(ndf=64, norm="none"):
    import torch.nn as nn
    middle = {"layernorm": [nn.LayerNorm((2 * ndf, 7, 7))], "none": []}[norm]
    return nn.Sequential(nn.Conv2d(1, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
                         nn.Conv2d(ndf, 2 * ndf, 4, 2, 1, bias=False), *middle, nn.LeakyReLU(0.2),
                         nn.Conv2d(2 * ndf, 1, 7, 1, 0, bias=False))


def initialise(model):
    """DCGAN's initialisation, as scratchgan's recipes: conv weights N(0, 0.02), BatchNorm weights N(1, 0.02)."""
    import torch
    import torch.nn as nn
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                module.weight.normal_(0.0, 0.02)
            elif isinstance(module, nn.BatchNorm2d):
                module.weight.normal_(1.0, 0.02)
                module.bias.zero_()


def gradient_penalty(D, real, fake, eps, weight):
    """weight * mean_n (||grad_x D(x_hat)_n|| - 1)^2 at x_hat = eps real + (1 - eps) fake, with the graph
    of the gradient kept (create_graph) so that backward differentiates it again."""
    import torch
    x_hat = (fake + eps * (real - fake)).requires_grad_(True)
    out = D(x_hat)
    (g,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    norms = g.flatten(1).norm(2, dim=1)
    return weight * ((norms - 1) ** 2).mean()


def critic_step(D, opt_d, real, fake, eps, weight):
    """One critic update: loss mean D(fake) - mean D(real) + penalty; returns (loss, estimate, penalty)."""
    opt_d.zero_grad()
    out = D(torch_cat(real, fake))
    out_real, out_fake = out[:len(real)], out[len(real):]
    estimate = out_real.mean() - out_fake.mean()
    penalty = gradient_penalty(D, real, fake, eps, weight)
    loss = -estimate + penalty
    loss.backward()
    opt_d.step()
    return loss.item(), estimate.item(), penalty.item()


def torch_cat(a, b):
    import torch
    return torch.cat([a, b])


def train(args):
    import torch
    from scratchgan.data import BatchLoader, load_images, transforms
    torch.manual_seed(args.seed)
    images = load_images("mnist", data_dir=args.data_dir)[:args.limit]
    loader = BatchLoader(transforms.to_tanh_range(images), args.batch_size, shuffle=True, drop_last=True,
                         seed=args.seed)
    G, D = generator(args.z_dim, args.ngf, args.g_norm), critic(args.ndf, args.d_norm)
    initialise(G)
    initialise(D)
    betas = (args.beta1, args.beta2)
    opt_g = torch.optim.Adam(G.parameters(), lr=args.lr, betas=betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=args.d_lr or args.lr, betas=betas)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    history, d_steps, g_steps, started = [], 0, 0, time.perf_counter()
    save_at = sorted(set(args.save_at))
    while g_steps < save_at[-1]:
        for real in loader:
            real = torch.from_numpy(real)
            fake = G(torch.randn(len(real), args.z_dim, 1, 1))
            eps = torch.rand(len(real), 1, 1, 1)
            loss, estimate, penalty = critic_step(D, opt_d, real, fake.detach(), eps, args.gp)
            d_steps += 1
            g_loss = float("nan")
            if d_steps % args.k == 0:
                for p in D.parameters():
                    p.requires_grad_(False)
                opt_g.zero_grad()
                g_value = -D(fake).mean()
                g_value.backward()
                opt_g.step()
                for p in D.parameters():
                    p.requires_grad_(True)
                g_loss, g_steps = g_value.item(), g_steps + 1
                if g_steps % 100 == 0:
                    print(json.dumps({"g_steps": g_steps, "seconds": round(time.perf_counter() - started, 1),
                                      "wasserstein": estimate}), flush=True)
                if g_steps in save_at:
                    write_samples(G, out / f"samples_{g_steps}.npy", args)
                    print(json.dumps({"g_steps": g_steps, "d_steps": d_steps,
                                      "seconds": round(time.perf_counter() - started, 1)}), flush=True)
            history.append((loss, g_loss, estimate, penalty))
            if g_steps >= save_at[-1]:
                break
    with open(out / "history.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["d_loss", "g_loss", "wasserstein", "gradient_penalty"])
        writer.writerows(history)


def write_samples(G, path, args):
    """10,000 (--samples) images from G in eval mode, (N, 28, 28) in [0, 1]."""
    import torch
    G.eval()
    with torch.no_grad():
        gen = torch.Generator().manual_seed(10_000)
        chunks = [G(torch.randn(500, args.z_dim, 1, 1, generator=gen)) for _ in range(0, args.samples, 500)]
    G.train()
    x = torch.cat(chunks)[:args.samples, 0].numpy()
    np.save(path, ((x + 1) / 2).clip(0, 1).astype(np.float32))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--save-at", type=int, nargs="+", default=[780, 2340], help="generator steps to sample at")
    p.add_argument("--samples", type=int, default=10000)
    p.add_argument("--limit", type=int, default=None, help="train on the first N digits only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--z-dim", type=int, default=100)
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--ndf", type=int, default=64)
    p.add_argument("--g-norm", default="batchnorm", choices=("batchnorm", "layernorm", "none"))
    p.add_argument("--d-norm", default="none", choices=("layernorm", "none"))
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--d-lr", type=float, default=None)
    p.add_argument("--beta1", type=float, default=0.0)
    p.add_argument("--beta2", type=float, default=0.9)
    p.add_argument("--k", type=int, default=5, help="critic steps per generator step")
    p.add_argument("--gp", type=float, default=10.0, help="gradient penalty weight lambda")
    train(p.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
