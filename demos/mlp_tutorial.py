"""The Julia/Flux binarized-MNIST GAN tutorial, ported block by block to scratchgan.

Every block below has its Julia original beside it in docs/tutorial.md. Where the Julia
code calls ``Flux.gradient`` (autograd), this port calls the layers' hand-written
``backward``. ``scratchgan train mlp`` runs the same recipe with checkpoints, resume,
Ctrl-C handling and more figures; this script is the readable, linear version.

    python demos/mlp_tutorial.py --data-dir ~/data/mnist --epochs 10 --out runs/tutorial
"""
import argparse
import sys
from pathlib import Path

import numpy as np

from scratchgan import Adam, Chain, Dense, Softmax, losses, manual_seed, sigmoid, tanh
from scratchgan import plots
from scratchgan.backend import RNG
from scratchgan.cli import positive_int, run_command
from scratchgan.data import BatchLoader, binarize, flatten, load_dataset, to_float
from scratchgan.gan import d_accuracy

Dz, Dh, Ddata = 28, 500, 28 ** 2
BS = 200


# -- Data: binarized MNIST, batches of 200 -------------------------------------------------
def binarized_mnist(data_dir):
    images, _ = load_dataset("mnist", "train", data_dir=data_dir)
    return binarize(flatten(to_float(images)))          # greyscale_MNIST .> 0.5


# -- Models: G and D as in the tutorial ------------------------------------------------------
def build_models():
    discriminator = Chain(Dense(Ddata, Dh, tanh), Dense(Dh, 2), Softmax())  # unit 0 = P(real)
    generator = Chain(Dense(Dz, Dh, tanh), Dense(Dh, Ddata, sigmoid))
    return discriminator, generator


# -- Loss functions and updates ---------------------------------------------------------
# Julia's discriminator_loss(x, z) sums the two halves and lets Flux differentiate the sum.
# Here each half gets its own forward and backward through D (a layer keeps one cache), and the
# parameter gradients of the two backward passes add up in D.grads: the gradient of the sum.
def update_discriminator(dis, opt, real_batch, fake_batch):
    """One step on -mean log D(x) - mean log(1 - D(G(z)))."""
    dis.zero_grad()
    total = 0.0
    for batch, target in ((real_batch, 1.0), (fake_batch, 0.0)):   # real = 1, fake = 0
        loss, dp = losses.two_class_cross_entropy(dis.forward(batch), target)
        dis.backward(dp)
        total += float(loss)
    opt.step()
    return total


def update_generator(gen, dis, opt, fake_batch):
    """One step on -mean log D(G(z)): G is penalized when D's output is far from "real".
    The gradient flows back through D, whose own weights are neither differentiated nor updated."""
    dis.requires_grad_(False)
    loss, dp = losses.two_class_cross_entropy(dis.forward(fake_batch), 1.0)
    d_fake_batch = dis.backward(dp)
    dis.requires_grad_(True)
    gen.zero_grad()
    gen.backward(d_fake_batch)   # G's forward pass for this batch kept its cache
    opt.step()
    return float(loss)


# -- train!: alternate D and G updates on every batch -------------------------------------
def train(dis, gen, batches, nepochs, rng, num_samples=15):
    opt_dis, opt_gen = Adam(dis), Adam(gen)        # Flux's ADAM(): lr 1e-3, betas (0.9, 0.999)
    d_loss_lst, g_loss_lst, anim_arr = [], [], []
    fixed_z = rng.normal((num_samples, Dz))
    for epoch in range(1, nepochs + 1):
        print(f"Epoch: {epoch}")
        anim_arr.append(gen.forward(fixed_z, train=False))  # training progress, one row per epoch
        for real_batch in batches:
            fake_batch = gen.forward(rng.normal((len(real_batch), Dz)))
            d_loss_lst.append(update_discriminator(dis, opt_dis, real_batch, fake_batch))
            g_loss_lst.append(update_generator(gen, dis, opt_gen, fake_batch))
    anim_arr.append(gen.forward(fixed_z, train=False))
    return d_loss_lst, g_loss_lst, anim_arr


# -- Analysis: discriminator accuracy over 200 real + 200 fake per batch -----------------------
def discriminator_accuracy(dis, gen, data, rng, BS=BS):
    """Per batch: the fraction of real images D calls real and of fakes it calls fake
    (the tutorial's total_correct / 2 / BS is the mean of the two). D calls a sample real when
    P(real) > 0.5, the library's one rule (the Julia code counts P(real) = 0.5 as real)."""
    real_acc, fake_acc = [], []
    for start in range(0, len(data) - BS + 1, BS):
        batch = data[start:start + BS]
        fake_pred = dis.forward(binarize(gen.forward(rng.normal((BS, Dz)), train=False)), train=False)[:, 0]
        real_pred = dis.forward(batch, train=False)[:, 0]
        real_acc.append(float(d_accuracy(real_pred, real=True)))
        fake_acc.append(float(d_accuracy(fake_pred, real=False)))
    return np.array(real_acc), np.array(fake_acc)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="folder with the MNIST IDX files (default: look up or download)")
    parser.add_argument("--epochs", type=positive_int, default=10)
    parser.add_argument("--out", default="runs/tutorial")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=positive_int, default=BS, help="the tutorial's BS (200)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manual_seed(args.seed)
    rng = RNG(args.seed + 1)

    binarized = binarized_mnist(args.data_dir)
    batches = BatchLoader(binarized, args.batch_size, shuffle=True, seed=args.seed)
    dis, gen = build_models()
    d_l, g_l, anim = train(dis, gen, batches, args.epochs, rng)

    plots.save_loss_plot(out / "loss.png", {"d_loss": d_l, "g_loss": g_l}, title="Loss over each mini-batch")
    plots.save_progress(out / "progress.png", anim, shape=(28, 28), epochs=list(range(len(anim))))
    plots.save_progress_gif(out / "progress.gif", anim, shape=(28, 28), epochs=list(range(len(anim))))
    real_acc, fake_acc = discriminator_accuracy(dis, gen, binarized, rng, args.batch_size)
    plots.save_accuracy_plot(out / "accuracy.png", real_acc, fake_acc,
                             title="Accuracy of discriminator over mini-batches of real/fake data")
    fakes = binarize(gen.forward(rng.normal((36, Dz)), train=False))       # generator(randn(Dz)) .> 0.5
    reals = binarized[rng.host.choice(len(binarized), 36, replace=False)]
    quiz, is_fake = plots.spot_the_fake(reals, fakes, n=36, fake_fraction=1 / 3, rng=args.seed)
    plots.save_spot_the_fake(out / "spot_the_fake.png", out / "spot_the_fake_answers.png", quiz, is_fake,
                             shape=(28, 28))
    print(f"discriminator accuracy: {real_acc.mean():.3f} on real, {fake_acc.mean():.3f} on fake; "
          f"figures in {out}/")


if __name__ == "__main__":
    sys.exit(run_command("mlp_tutorial.py", main))
