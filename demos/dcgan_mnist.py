"""DCGAN on MNIST in one file, top to bottom, in the style of the Flux model-zoo DCGAN script.

Hyper-parameters, data, the two models as ``Chain(...)``, the losses, one discriminator
update and one generator update written out with ``forward``/``backward``/``step``, and
the loop. After every epoch it writes a grid of samples from a fixed noise batch; at the
end a loss plot. ``scratchgan train dcgan`` trains the same models with checkpoints,
resume and evaluation (docs/dcgan.md); this script is the version to read.

    python demos/dcgan_mnist.py --data-dir ~/data/mnist --epochs 5 --out runs/dcgan_mnist
"""
import argparse
from dataclasses import dataclass
from pathlib import Path

from scratchgan import (Adam, BatchNorm, Chain, Conv2d, ConvTranspose2d, LeakyReLU, ReLU, Tanh, backend, losses,
                        manual_seed, plots)
from scratchgan.backend import RNG
from scratchgan.data import BatchLoader, from_tanh_range, load_dataset, to_tanh_range


# -- Hyper-parameters: all in one place ----------------------------------------------------
@dataclass
class HyperParams:
    batch_size: int = 128
    latent_dim: int = 100
    epochs: int = 5
    lr_dscr: float = 2e-4       # Adam, betas (0.5, 0.999), for both networks (the DCGAN paper)
    lr_gen: float = 2e-4
    beta1: float = 0.5
    n_samples: int = 64         # the fixed noise batch drawn after every epoch (an 8x8 grid)
    verbose_freq: int = 50      # print the losses every this many steps


# -- Data: MNIST digits scaled to [-1, 1], the range of G's tanh ----------------------------
def load_mnist_images(data_dir, limit=None):
    images, _ = load_dataset("mnist", "train", data_dir=data_dir)      # uint8 (N, 28, 28)
    return to_tanh_range(images[:limit, None])                          # float32 (N, 1, 28, 28)


# -- Models: DCGAN-28 (no conv biases: BatchNorm follows; weights N(0, 0.02), BN scales N(1, 0.02)) --
def Discriminator():
    """(N, 1, 28, 28) -> (N, 1, 1, 1): one logit per image, "real" when positive."""
    return Chain(Conv2d(1, 64, 4, 2, 1, bias=False, init="normal_0.02"),        # 14x14
                 LeakyReLU(0.2),
                 Conv2d(64, 128, 4, 2, 1, bias=False, init="normal_0.02"),      # 7x7
                 BatchNorm(128, init="normal_1_0.02"),
                 LeakyReLU(0.2),
                 Conv2d(128, 1, 7, 1, 0, bias=False, init="normal_0.02"))       # 1x1


def Generator(latent_dim):
    """(N, latent_dim, 1, 1) noise -> (N, 1, 28, 28) images in [-1, 1]."""
    return Chain(ConvTranspose2d(latent_dim, 256, 7, 1, 0, bias=False, init="normal_0.02"),  # 7x7
                 BatchNorm(256, init="normal_1_0.02"),
                 ReLU(),
                 ConvTranspose2d(256, 128, 4, 2, 1, bias=False, init="normal_0.02"),         # 14x14
                 BatchNorm(128, init="normal_1_0.02"),
                 ReLU(),
                 ConvTranspose2d(128, 1, 4, 2, 1, bias=False, init="normal_0.02"),           # 28x28
                 Tanh())


# -- Losses: binary cross-entropy on D's logits; each returns (value, d value / d logits) --
def real_loss(logits):
    return losses.bce_with_logits(logits, 1.0)       # -mean log sigmoid(D(x))


def fake_loss(logits):
    return losses.bce_with_logits(logits, 0.0)       # -mean log(1 - sigmoid(D(G(z))))


# -- One discriminator update: descend BCE(D(x), 1) + BCE(D(G(z)), 0) ------------------------
# D keeps one cache per layer, so each batch gets its own forward and backward; the parameter
# gradients of the two backward passes add up in D's grads (the gradient of the sum). Each
# batch is normalized with its own BatchNorm statistics, as in the PyTorch DCGAN example.
def train_discriminator(dscr, opt_dscr, real, fake):
    dscr.zero_grad()
    loss_real, dlogits = real_loss(dscr.forward(real, train=True))
    dscr.backward(dlogits)
    loss_fake, dlogits = fake_loss(dscr.forward(fake, train=True))
    dscr.backward(dlogits)
    opt_dscr.step()
    return float(loss_real + loss_fake)


# -- One generator update: descend BCE(D(G(z)), 1), the non-saturating loss -------------------
# The gradient flows back through the updated D into G; D's own parameters are neither
# differentiated nor updated. G's forward pass for this fake batch kept its cache.
def train_generator(gen, dscr, opt_gen, fake):
    dscr.requires_grad_(False)
    loss, dlogits = real_loss(dscr.forward(fake, train=True))
    dfake = dscr.backward(dlogits)
    dscr.requires_grad_(True)
    gen.zero_grad()
    gen.backward(dfake)
    opt_gen.step()
    return float(loss)


# -- The loop ------------------------------------------------------------------------------
def train(images, hparams, out, device="cpu", seed=0):
    manual_seed(seed)                                        # initial weights (G first, then D)
    rng, xp = RNG(seed + 1), backend.xp_for(device)         # training noise
    gen, dscr = Generator(hparams.latent_dim).to(device), Discriminator().to(device)
    opt_dscr = Adam(dscr, lr=hparams.lr_dscr, betas=(hparams.beta1, 0.999))
    opt_gen = Adam(gen, lr=hparams.lr_gen, betas=(hparams.beta1, 0.999))
    batches = BatchLoader(images, hparams.batch_size, shuffle=True, seed=seed, device=device)
    noise_shape = (hparams.latent_dim, 1, 1)
    fixed_noise = RNG(seed + 2).normal((hparams.n_samples, *noise_shape), xp=xp)  # the same grid every epoch
    d_losses, g_losses, step = [], [], 0
    for epoch in range(1, hparams.epochs + 1):
        for real in batches:
            fake = gen.forward(rng.normal((len(real), *noise_shape), xp=xp), train=True)  # G runs once per step
            d_losses.append(train_discriminator(dscr, opt_dscr, real, fake))
            g_losses.append(train_generator(gen, dscr, opt_gen, fake))
            step += 1
            if step % hparams.verbose_freq == 0:
                print(f"epoch {epoch}, step {step}: D loss {d_losses[-1]:.4f}, G loss {g_losses[-1]:.4f}")
        samples = gen.forward(fixed_noise, train=False)            # eval mode: running BatchNorm statistics
        grid = plots.save_grid(out / f"samples_epoch_{epoch:03d}.png", from_tanh_range(samples), nrow=8)
        print(f"epoch {epoch} done: D loss {d_losses[-1]:.4f}, G loss {g_losses[-1]:.4f}; {grid}")
    plots.save_loss_plot(out / "loss.png", {"d_loss": d_losses, "g_loss": g_losses},
                         smooth=min(50, len(d_losses)), title="DCGAN on MNIST: loss per mini-batch")
    return gen, dscr, d_losses, g_losses


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="folder with the MNIST IDX files (default: look up or download)")
    parser.add_argument("--epochs", type=int, default=HyperParams.epochs)
    parser.add_argument("--batch-size", type=int, default=HyperParams.batch_size)
    parser.add_argument("--limit", type=int, help="train on the first N images only (default: all)")
    parser.add_argument("--out", default="runs/dcgan_mnist")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", choices=backend.DEVICES)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    hparams = HyperParams(batch_size=args.batch_size, epochs=args.epochs)
    images = load_mnist_images(args.data_dir, args.limit)
    print(f"{len(images)} images, batches of {hparams.batch_size}, {hparams.epochs} epochs, on {args.device}")
    train(images, hparams, out, args.device, args.seed)
    print(f"sample grids and loss.png in {out}/")


if __name__ == "__main__":
    main()
