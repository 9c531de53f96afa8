"""SRResNet and SRGAN (Ledig et al. 2017): x4 super-resolution of MNIST digits.

The low-resolution digit is the mean of each 4 x 4 block of the 28 x 28 original (7 x 7);
the generator returns 28 x 28. Pixels are in [-1, 1] inside the models (x / 127.5 - 1; a block
mean in that range is the same affine map of the block mean in [0, 1]).

    G (SRResNet): Conv 9x9 (1 -> c) -> PReLU                       7 x 7
                  B x Residual(Conv 3x3 -> BN -> PReLU -> Conv 3x3 -> BN)
                  Residual over the blocks: ... -> Conv 3x3 -> BN, plus the first conv's output
                  2 x [Conv 3x3 (c -> 4c) -> PixelShuffle(2) -> PReLU]   14 x 14, then 28 x 28
                  Conv 9x9 (c -> 1) -> tanh
    D:            Conv 3x3 -> LReLU, strided Conv/BN/LReLU blocks (28 -> 14 -> 7), Dense 256 -> LReLU -> Dense 1

Recipes: ``srresnet`` minimises the pixel MSE; ``srgan`` minimises the MSE between our MNIST
classifier's feature maps of SR and original (the analogue of the paper's VGG loss, see
``CONTENT_LAYERS``) plus 1e-3 x the non-saturating adversarial loss, starting, as in the paper,
from a trained SRResNet (``init_from``) if given.
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import backend, losses, plots
from .. import layers as L
from ..data import BatchLoader, transforms
from ..evaluation.image_quality import bicubic_upscale, block_mean, psnr, ssim
from ..fileio import write_json
from ..layers.activations import sigmoid
from ..optim import Adam
from .image_to_image import ImageToImageRun, StepHistory, StepHistoryTrainer
from .recipes import Recipe, _integer, _number, _optional

SCALE = 4
LOW_SIZE, HIGH_SIZE = 7, 28
#: classifier layers whose output is the srgan content loss's feature space (scratchgan-cnn-v1's Chain)
CONTENT_LAYERS = {"conv1": 3, "conv2": 6, "features": 10}   # 32x14x14, 32x7x7, 128 (after BN + ReLU)


def downscale(images):
    """Low-resolution digits: the mean of each 4 x 4 block, (N, 1, 28, 28) -> (N, 1, 7, 7)."""
    return block_mean(images, SCALE)


# -- models ---------------------------------------------------------------------------------
def srresnet_generator(n_blocks=4, channels=64, image_channels=1):
    """SRResNet: (N, C, 7, 7) in [-1, 1] -> (N, C, 28, 28) in [-1, 1] (module docstring)."""
    c = channels

    def block():
        return L.Residual(L.Chain(L.Conv2d(c, c, 3, padding=1, bias=False), L.BatchNorm(c), L.PReLU(c),
                                  L.Conv2d(c, c, 3, padding=1, bias=False), L.BatchNorm(c)))

    def upsample():
        return [L.Conv2d(c, 4 * c, 3, padding=1), L.PixelShuffle(2), L.PReLU(c)]

    trunk = L.Residual(L.Chain(*[block() for _ in range(n_blocks)],
                               L.Conv2d(c, c, 3, padding=1, bias=False), L.BatchNorm(c)))
    return L.Chain(L.Conv2d(image_channels, c, 9, padding=4), L.PReLU(c), trunk, *upsample(), *upsample(),
                   L.Conv2d(c, image_channels, 9, padding=4), L.Tanh())


def sr_discriminator(ndf=32, image_channels=1):
    """(N, C, 28, 28) -> (N, 1) logits."""
    def down(cin, cout, k, s):
        return [L.Conv2d(cin, cout, k, s, 1, bias=False), L.BatchNorm(cout), L.LeakyReLU(0.2)]
    return L.Chain(L.Conv2d(image_channels, ndf, 3, 1, 1), L.LeakyReLU(0.2),
                   *down(ndf, ndf, 4, 2), *down(ndf, 2 * ndf, 3, 1), *down(2 * ndf, 2 * ndf, 4, 2),
                   L.Flatten(), L.Dense(2 * ndf * 7 * 7, 256), L.LeakyReLU(0.2), L.Dense(256, 1))


# -- content losses -------------------------------------------------------------------------
class PixelMSE:
    """mean (SR - HR)^2 over the pixels, in the models' [-1, 1] range."""

    name = "pixel MSE"

    def __call__(self, sr, hr):
        return losses.mse(sr, hr)


class FeatureMSE:
    """mean (phi(SR) - phi(HR))^2, phi = the first layers of the shipped MNIST classifier (eval mode,
    frozen), which reads [0, 1] images: the chain rule adds the factor 1/2 of x -> (x + 1) / 2."""

    def __init__(self, layer="conv2", device="cpu"):
        from ..evaluation import load_classifier
        classifier = load_classifier(dataset="mnist", device=device)
        self.name = f"classifier {layer} feature MSE"
        self.net = classifier.net[:CONTENT_LAYERS[layer]]
        self.net.eval().requires_grad_(False)

    def to(self, device):
        self.net.to(device)
        return self

    def __call__(self, sr, hr):
        half = sr.dtype.type(0.5)
        target = self.net.forward((hr + 1) * half, train=False, keep_cache=False)
        features = self.net.forward((sr + 1) * half, train=False, keep_cache=True)
        value, grad = losses.mse(features, target)
        return value, self.net.backward(grad) * half


# -- the training step ----------------------------------------------------------------------
class SuperResolutionTrainer(StepHistoryTrainer):
    """One step per (low, high) batch, both in [-1, 1]:

        sr = G(low);  content, dsr = content_loss(sr, high)
        with D:  D step on high (real) and sr (fake), BCE on logits;
                 adversarial = BCE(D(sr), real) (non-saturating), dsr += w * d adversarial / d sr
        G.backward(dsr);  G update

    History per step: g_loss (content + w adversarial), content, psnr (of the batch, dB, in [0, 1]),
    and with D: adversarial, d_loss, d_real, d_fake (mean P(real) on each batch).
    """

    def __init__(self, G, opt_g, content, D=None, opt_d=None, adversarial_weight=1e-3, device="cpu"):
        self.G, self.opt_g, self.content, self.D, self.opt_d = G, opt_g, content, D, opt_d
        self.adversarial_weight, self.device = adversarial_weight, device
        keys = ("g_loss", "content", "psnr") + (("adversarial", "d_loss", "d_real", "d_fake") if D else ())
        self.steps = StepHistory(keys, device)

    def train_step(self, batch):
        low, high = batch
        sr = self.G.forward(low, train=True)
        content, dsr = self.content(sr, high)
        g_loss, values = content, []
        if self.D is not None:
            d_loss, p_real, p_fake = self.discriminator_step(high, sr)
            adversarial, dsr_adversarial = self.adversarial_gradient(sr)
            w = sr.dtype.type(self.adversarial_weight)
            dsr = dsr + w * dsr_adversarial
            g_loss = content + w * adversarial
            values = [adversarial, d_loss, p_real, p_fake]
        self.G.zero_grad()
        self.G.backward(dsr, input_grad=False)
        self.opt_g.step()
        self.steps.d_steps += 1
        self.steps.record([g_loss, content, batch_psnr(sr, high), *values])

    def discriminator_step(self, high, sr):
        """D update on the originals (real) and G's output (fake, as data); (loss, mean P(real) on each)."""
        self.D.zero_grad()
        total, means = 0, []
        for images, target in ((high, 1.0), (sr, 0.0)):
            out = self.D.forward(images, train=True)
            value, grad = losses.bce_with_logits(out, target)
            self.D.backward(grad, input_grad=False)
            total = total + value
            means.append(sigmoid(out).mean())
        self.opt_d.step()
        return total, means[0], means[1]

    def adversarial_gradient(self, sr):
        """Non-saturating loss -mean log D(sr) and its gradient with respect to sr (D's weights untouched)."""
        with self.D.frozen():
            out = self.D.forward(sr, train=True)
            value, grad = losses.bce_with_logits(out, 1.0)
            return value, self.D.backward(grad)


def batch_psnr(sr, high):
    """Mean PSNR (dB) of a batch in [-1, 1], measured in [0, 1] on the device: 10 log10(1 / MSE) per image."""
    xp = backend.get_xp(sr)
    diff = (sr.clip(-1, 1) - high) * sr.dtype.type(0.5)
    mse = (diff * diff).reshape(len(sr), -1).mean(axis=1)
    return (-10 * xp.log10(xp.maximum(mse, sr.dtype.type(1e-12)))).mean()


# -- recipes --------------------------------------------------------------------------------
@dataclass
class SRSetup:
    G: L.Chain
    opt_g: object
    content: object
    D: L.Chain = None
    opt_d: object = None
    adversarial_weight: float = 0.0


def build_srresnet(o, image_shape):
    _check_shape(image_shape)
    G = srresnet_generator(o["n_blocks"], o["width"], image_shape[0])
    return SRSetup(G, Adam(G, lr=o["lr"], betas=(o["beta1"], 0.999)), PixelMSE())


def build_srgan(o, image_shape):
    _check_shape(image_shape)
    G = srresnet_generator(o["n_blocks"], o["width"], image_shape[0])
    if o["init_from"]:
        _load_srresnet(o["init_from"], G)
    D = sr_discriminator(o["ndf"], image_shape[0])
    betas = (o["beta1"], 0.999)
    return SRSetup(G, Adam(G, lr=o["lr"], betas=betas), FeatureMSE(o["content_layer"]), D,
                   Adam(D, lr=o["lr"], betas=betas), o["adversarial_weight"])


def _check_shape(image_shape):
    if tuple(image_shape[1:]) != (HIGH_SIZE, HIGH_SIZE):
        raise ValueError(f"srresnet/srgan upscale 7x7 to 28x28 digits; got images of {image_shape[1]}x{image_shape[2]}")


def _load_srresnet(path, G):
    """Copy the generator of a trained srresnet run (``init_from``) into G."""
    from .checkpoint import Checkpoint, CheckpointError
    checkpoint = Checkpoint(path)
    if checkpoint.meta["recipe"] not in ("srresnet", "srgan"):
        raise CheckpointError(f"init_from: {path} is a {checkpoint.meta['recipe']!r} run, not srresnet")
    checkpoint.load_generator(G)


def upscale_images(G, low, device="cpu", batch_size=64):
    """G (eval mode) on low-resolution images in [0, 1], (N, 1, 7, 7) -> (N, 1, 28, 28) in [0, 1] (NumPy float32).

    Batches of 64: the last 9x9 convolution's im2col matrix holds 64 x 81 x 784 values per image
    (16 MB in float32), so 500 at once would need 8 GB."""
    out = []
    for start in range(0, len(low), batch_size):
        x = backend.to_device(np.asarray(low[start:start + batch_size], np.float32) * 2 - 1, device)
        out.append(backend.asnumpy(transforms.from_tanh_range(G.forward(x, train=False, keep_cache=False))))
    return np.concatenate(out).astype(np.float32)


SR_COMMON = {"batch_size": 32, "lr": 1e-3, "beta1": 0.9, "n_blocks": 4, "width": 64, "seed": 0, "epochs": 5}
SR_CHECKS = {"n_blocks": _integer(0), "width": _integer(1),
             "adversarial_weight": _number(0, None),
             "content_layer": ((lambda v: v in CONTENT_LAYERS), f"one of {', '.join(CONTENT_LAYERS)}"),
             "init_from": ((lambda v: v is None or (isinstance(v, str) and Path(v).is_file())),
                           "the path of an srresnet checkpoint.npz that exists (or unset)")}


# -- the run: data, figures, evaluation -----------------------------------------------------
class SuperResolutionRun(ImageToImageRun):
    """``train_run``'s protocol (run.GANRun) for srresnet and srgan: batches of (low, high) digits."""

    files = ("comparison.png", "quality.csv", "quality.png", "sr_evaluation.json")
    N_PROGRESS = 10

    def __init__(self, recipe, options, images, device):
        self.setup = setup = recipe.setup(options, tuple(images.shape[1:]))
        self.device = device
        setup.G.to(device)
        if setup.D is not None:
            setup.D.to(device)
        if hasattr(setup.content, "to"):
            setup.content.to(device)
        high = transforms.to_tanh_range(images)
        low = downscale(high)
        self.loader = BatchLoader((low, high), options["batch_size"], shuffle=True, drop_last=True,
                                  seed=options["seed"], device=device)
        self.trainer = SuperResolutionTrainer(setup.G, setup.opt_g, setup.content, setup.D, setup.opt_d,
                                              setup.adversarial_weight, device)
        self.networks = {"G": setup.G, **({"D": setup.D} if setup.D is not None else {})}
        self.optimizers = {"opt_g": setup.opt_g, **({"opt_d": setup.opt_d} if setup.D is not None else {})}
        self.fixed_high = transforms.from_tanh_range(high[:self.N_PROGRESS])
        self.fixed_low = downscale(self.fixed_high)

    def progress_row(self):
        return upscale_images(self.setup.G, self.fixed_low, self.device)

    def evaluator(self, dataset, data_dir, quiet):
        return SuperResolutionEvaluator(data_dir)

    def epoch_metrics(self, evaluator, epoch):
        return {"epoch": epoch, **evaluator.quality(self.setup.G, self.device, evaluator.EPOCH_SAMPLES)}

    def final_metrics(self, evaluator, n):
        return evaluator.final(self.setup.G, self.device, n)

    def write_epoch_outputs(self, out, progress, steps_per_epoch, epoch_metrics=()):
        from .run import history_for_plots
        history = history_for_plots(self.trainer.history, steps_per_epoch)
        plots.write_history_csv(out / "history.csv", self.trainer.history)
        keys = ("g_loss", "content") + (("d_loss",) if self.setup.D is not None else ())
        plots.save_loss_plot(out / "loss.png", history, keys=keys,
                             title=f"Generator loss ({self.setup.content.name}) per mini-batch")
        if self.setup.D is not None:
            plots.save_d_outputs_plot(out / "d_outputs.png", history)
        low = nearest_upscale(self.fixed_low)
        rows = [low, *progress, self.fixed_high]
        labels = ["low-res", *[f"epoch {e}" for e in range(len(progress))], "original"]
        plots.save_image_strips(out / "progress.png", rows, labels=labels)
        plots.save_progress_gif(out / "progress.gif", progress, epochs=range(len(progress)))

    def write_final_outputs(self, out, options, meta):
        summary = {**meta, "steps": self.trainer.d_steps,
                   "final": {k: self.trainer.last(k) for k in self.trainer.history}}
        write_json(out / "summary.json", summary)
        return summary


def nearest_upscale(low):
    """Low-resolution images shown at full size, each pixel a 4 x 4 block (no interpolation)."""
    return np.repeat(np.repeat(low, SCALE, axis=2), SCALE, axis=3)


class SuperResolutionEvaluator:
    """PSNR, SSIM (and, at the end, the shipped classifier's accuracy) on the MNIST test digits."""

    EPOCH_SAMPLES = 1000

    def __init__(self, data_dir=None):
        from ..evaluation.classifier import load_split
        self.images, self.labels = load_split("mnist", "test", data_dir)   # (10000, 1, 28, 28) in [0, 1]
        self.low = downscale(self.images)

    def quality(self, G, device, n):
        sr = upscale_images(G, self.low[:n], device)
        return {"psnr": float(psnr(sr, self.images[:n]).mean()), "ssim": float(ssim(sr, self.images[:n]).mean()),
                "n": n}

    def final(self, G, device, n=10000):
        return evaluate_upscaler(lambda low: upscale_images(G, low, device), self.images[:n], self.labels[:n])

    def write_epoch_metrics(self, out, epoch_metrics, quiet):
        columns = {k: [m[k] for m in epoch_metrics] for k in epoch_metrics[0]}
        plots.write_history_csv(out / "quality.csv", columns)
        plots.save_curve_panels(out / "quality.png", {"PSNR (dB), higher is better": {"test": columns["psnr"]},
                                                      "SSIM, higher is better": {"test": columns["ssim"]}},
                                x=columns["epoch"], xlabel="epoch",
                                title=f"Per-epoch quality on the first {columns['n'][-1]} MNIST test digits")
        if not quiet:
            print(f"epoch {columns['epoch'][-1]}: PSNR {columns['psnr'][-1]:.2f} dB, SSIM {columns['ssim'][-1]:.4f}")

    @staticmethod
    def format(row):
        return format_quality_table([row])


def evaluate_upscaler(upscale, images, labels, classifier=None, name=None):
    """PSNR, SSIM and the classifier's accuracy of ``upscale(block means)`` against the originals."""
    from ..evaluation import load_classifier
    classifier = classifier or load_classifier(dataset="mnist")
    sr = upscale(downscale(images))
    p, s = psnr(sr, images), ssim(sr, images)
    row = {"psnr": float(p.mean()), "psnr_sem": float(p.std(ddof=1) / np.sqrt(len(p))),
           "ssim": float(s.mean()), "accuracy": classifier.accuracy(sr, labels), "n": len(images)}
    return {"name": name, **row} if name else row


def bicubic_row(images, labels, classifier=None):
    return evaluate_upscaler(lambda low: bicubic_upscale(low, SCALE), images, labels, classifier, "bicubic")


def format_quality_table(rows):
    lines = ["| method | PSNR (dB) | SSIM | classifier accuracy | n |", "|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row.get('name', 'this run')} | {row['psnr']:.2f} ± {row.get('psnr_sem', 0):.2f} | "
                     f"{row['ssim']:.4f} | {100 * row['accuracy']:.2f}% | {row['n']} |")
    return "\n".join(lines)


SRRESNET = Recipe("srresnet", "SRResNet (Ledig et al. 2017): x4 super-resolution of MNIST (7x7 block means -> 28x28), "
                  "pixel MSE", {**SR_COMMON}, build_srresnet, image_sizes=(HIGH_SIZE,), checks=SR_CHECKS,
                  family=SuperResolutionRun)
SRGAN = Recipe("srgan", "SRGAN (Ledig et al. 2017): SRResNet + classifier-feature content loss + 1e-3 adversarial",
               {**SR_COMMON, "lr": 1e-4, "ndf": 32, "adversarial_weight": 1e-3, "content_layer": "conv2",
                "init_from": None}, build_srgan, image_sizes=(HIGH_SIZE,), checks=SR_CHECKS,
               family=SuperResolutionRun)
