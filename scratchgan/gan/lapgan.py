"""LAPGAN (Denton, Chintala, Szlam & Fergus 2015): a cascade of GANs on a Laplacian pyramid, 7 -> 14 -> 28.

The pyramid of an image x (28 x 28; 32 x 32 gives 8 -> 16 -> 32) has three levels, coarse to fine,

    x_2 = x,   x_1 = d(x_2),   x_0 = d(x_1)                 d: the mean of each 2 x 2 block
    h_l = x_l - u(x_{l-1})   (l = 1, 2)                      u: nearest upsampling x2

and is exactly invertible: x_l = u(x_{l-1}) + h_l, so x = u(u(x_0) + h_1) + h_2. LAPGAN learns one
generative model per level:

    level 0: an ordinary GAN,  x_0 ~ G_0(z_0);  D_0 judges 7 x 7 images
    level l: a conditional GAN on the coarser image,  h_l ~ G_l(n_l, u(x_{l-1})),  n_l a noise plane
             (N, 1, H, W) joined to the upsampled coarse image along the channels (ConcatChannels);
             D_l judges u(x_{l-1}) + h_l, conditioned on u(x_{l-1}) (the two joined along the channels)

The levels train independently on the pyramid of the real images, as in the paper: each step
builds the pyramid of one real batch and trains every level's D and G on its own slice of it (G_l is
conditioned on the *real* coarser image, never on a generated one), with the non-saturating loss of
``objectives.CrossEntropyGame`` and Adam (2e-4, beta1 0.5). One Adam updates every level's G (and one
every level's D): Adam works parameter by parameter, so this equals one optimizer per level.

Sampling runs the whole cascade (``LaplacianCascade.forward``): x_0 = G_0(z_0), then
x_l = u(x_{l-1}) + G_l(n_l, u(x_{l-1})). The cascade is the run's generator: one noise vector per
sample, (N, z_dim + 14^2 + 28^2), split into z_0 and the noise planes (``split_noise``), so
``scratchgan sample``, ``scratchgan evaluate`` and the per-epoch metrics draw from it like any
generator. docs/multiscale.md: the models, the maths, the commands and what is tested.
"""
import numpy as np

from .. import backend, plots
from .. import layers as L
from ..data import transforms
from ..layers.base import Layer, resolve_keep_cache
from ..optim import Adam
from .multiscale import downscale, upscale_nearest
from .objectives import CrossEntropyGame, get_head
from .recipes import COMMON, Recipe, Setup, _config
from .run import GANRun, history_for_plots
from .trainer import GANTrainer

IMAGE_SIZES = (28, 32)
LEVELS = 3   # 7 -> 14 -> 28 (8 -> 16 -> 32)
N_LEVEL_SAMPLES = 6   # samples shown level by level in levels.png


def level_sizes(size, levels=LEVELS):
    """The pyramid's sides, coarse to fine: 28 -> (7, 14, 28), 32 -> (8, 16, 32)."""
    return tuple(size // 2 ** (levels - 1 - l) for l in range(levels))


# -- the Laplacian pyramid -----------------------------------------------------------------------
def laplacian_pyramid(x, levels=LEVELS):
    """(images, residuals) of images x (N, C, S, S): images[l] = x averaged down to level l (coarse to
    fine, images[-1] is x), residuals[l - 1] = images[l] - u(images[l - 1]) for l = 1 .. levels - 1."""
    images = [x]
    for _ in range(levels - 1):
        images.insert(0, downscale(images[0]))
    residuals = [fine - upscale_nearest(coarse) for coarse, fine in zip(images, images[1:])]
    return images, residuals


def collapse_pyramid(coarse, residuals):
    """The image a pyramid describes: x = u(... u(u(coarse) + residuals[0]) ...) + residuals[-1]."""
    x = coarse
    for residual in residuals:
        x = upscale_nearest(x) + residual
    return x


# -- models --------------------------------------------------------------------------------------
def coarse_generator(z_dim, channels, size, ngf):
    """G_0: z (N, z_dim) -> (N, channels, size, size) in [-1, 1], size 7 or 8:
    Dense -> (2 ngf, size, size) -> BN -> ReLU -> Conv3x3 (ngf) -> BN -> ReLU -> Conv3x3 (channels) -> tanh."""
    return L.Chain(L.Dense(z_dim, 2 * ngf * size * size, bias=False, init="normal_0.02"),
                   L.Reshape(2 * ngf, size, size),
                   L.BatchNorm(2 * ngf, init="normal_1_0.02"), L.ReLU(),
                   L.Conv2d(2 * ngf, ngf, 3, 1, 1, bias=False, init="normal_0.02"),
                   L.BatchNorm(ngf, init="normal_1_0.02"), L.ReLU(),
                   L.Conv2d(ngf, channels, 3, 1, 1, init="normal_0.02"), L.Tanh())


def coarse_discriminator(channels, size, ndf):
    """D_0: (N, channels, size, size) -> (N, 1) logits: Conv3x3 -> LReLU -> Conv4x4 s2 -> BN -> LReLU -> Dense."""
    return L.Chain(L.Conv2d(channels, ndf, 3, 1, 1, init="normal_0.02"), L.LeakyReLU(0.2),
                   L.Conv2d(ndf, 2 * ndf, 4, 2, 1, bias=False, init="normal_0.02"),
                   L.BatchNorm(2 * ndf, init="normal_1_0.02"), L.LeakyReLU(0.2),
                   L.Flatten(), L.Dense(2 * ndf * (size // 2) ** 2, 1, init="normal_0.02"))


def residual_generator(channels, ngf):
    """G_l: (noise plane (N, 1, H, W), u(coarse) (N, channels, H, W)) -> residual (N, channels, H, W), linear:
    ConcatChannels -> [Conv3x3 -> BN -> ReLU] x 2 -> Conv3x3 (any H, W)."""
    return L.Chain(L.ConcatChannels(),
                   L.Conv2d(1 + channels, ngf, 3, 1, 1, bias=False, init="normal_0.02"),
                   L.BatchNorm(ngf, init="normal_1_0.02"), L.ReLU(),
                   L.Conv2d(ngf, ngf, 3, 1, 1, bias=False, init="normal_0.02"),
                   L.BatchNorm(ngf, init="normal_1_0.02"), L.ReLU(),
                   L.Conv2d(ngf, channels, 3, 1, 1, init="normal_0.02"))


def residual_discriminator(channels, size, ndf):
    """D_l: (u(coarse) + residual, u(coarse)), each (N, channels, size, size) -> (N, 1) logits:
    ConcatChannels -> Conv4x4 s2 -> LReLU -> Conv4x4 s2 -> BN -> LReLU -> Dense (size 14, 16, 28 or 32)."""
    return L.Chain(L.ConcatChannels(), L.Conv2d(2 * channels, ndf, 4, 2, 1, init="normal_0.02"), L.LeakyReLU(0.2),
                   L.Conv2d(ndf, 2 * ndf, 4, 2, 1, bias=False, init="normal_0.02"),
                   L.BatchNorm(2 * ndf, init="normal_1_0.02"), L.LeakyReLU(0.2),
                   L.Flatten(), L.Dense(2 * ndf * (size // 4) ** 2, 1, init="normal_0.02"))


class Levels(Layer):
    """One model per pyramid level, coarse to fine, held as one Layer: saved (``level0.``, ``level1.``, ...),
    moved and optimised together. Each level runs on its own inputs, so the whole has no forward."""

    def __init__(self, models):
        super().__init__()
        self.levels = list(models)

    def children(self):
        return [(f"level{i}", model) for i, model in enumerate(self.levels)]

    def forward(self, x, train=None, keep_cache=None, *, grad=None):
        raise TypeError(f"{type(self).__name__}: each level runs on its own input; call .levels[l].forward")

    __call__ = forward

    def __repr__(self):
        return f"{type(self).__name__}({len(self.levels)} levels)"


class LaplacianCascade(Levels):
    """The generators G_0 (coarse), G_1, ..., as one sampler: noise (N, noise_size) -> images (N, C, S, S).

    The noise vector of a sample is [z_0 (z_dim), n_1 (S_1^2), n_2 (S_2^2), ...]: ``split_noise`` cuts it
    into G_0's input and one plane (N, 1, S_l, S_l) per finer level. ``forward`` runs the cascade for
    sampling only (no backward: the levels train on the real pyramid, LAPGANTrainer); ``output_size``
    stops it at a coarser level (``scratchgan sample --resolution``)."""

    def __init__(self, z_dim, channels, size, ngf):
        self.sizes = level_sizes(size)
        self.z_dim, self.channels = z_dim, channels
        super().__init__([coarse_generator(z_dim, channels, self.sizes[0], ngf)]
                         + [residual_generator(channels, ngf) for _ in self.sizes[1:]])
        self.noise_size = z_dim + sum(s * s for s in self.sizes[1:])
        self.output_size = self.sizes[-1]

    def split_noise(self, z):
        """[z_0 (N, z_dim), n_1 (N, 1, S_1, S_1), ...] from noise (N, noise_size)."""
        if z.ndim != 2 or z.shape[1] != self.noise_size:
            planes = " + ".join(f"{s}x{s}" for s in self.sizes[1:])
            raise ValueError(f"{self!r}: expected noise of shape (N, {self.noise_size}) (z {self.z_dim} + a plane "
                             f"per finer level, {planes}), got {tuple(z.shape)}")
        parts, start = [z[:, :self.z_dim]], self.z_dim
        for s in self.sizes[1:]:
            parts.append(z[:, start:start + s * s].reshape(len(z), 1, s, s))
            start += s * s
        return parts

    def stages(self, z, train=False):
        """The cascade level by level, for noise z: [{"image": x_0}, {"upsampled": u(x_0), "residual": h_1,
        "image": x_1}, ...] up to ``output_size``; G's in eval mode (running BatchNorm statistics) unless ``train``."""
        noise = self.split_noise(z)
        x = self.levels[0].forward(noise[0], train=train, keep_cache=False)
        stages = [{"image": x}]
        for G, plane, size in zip(self.levels[1:], noise[1:], self.sizes[1:]):
            if size > self.output_size:
                break
            up = upscale_nearest(x)
            residual = G.forward((plane, up), train=train, keep_cache=False)
            x = up + residual
            stages.append({"upsampled": up, "residual": residual, "image": x})
        return stages

    def forward(self, z, train=None, keep_cache=None, *, grad=None):
        train = self.training if train is None else train
        if resolve_keep_cache(keep_cache, grad, train):
            raise RuntimeError(f"{self!r} samples only (forward(z, train=False) or keep_cache=False): its "
                               f"levels train one by one on the real pyramid (LAPGANTrainer)")
        return self.stages(z, train)[-1]["image"]

    __call__ = forward

    def __repr__(self):
        return f"LaplacianCascade({' -> '.join(f'{s}x{s}' for s in self.sizes)}, z {self.z_dim})"


# -- the training step ---------------------------------------------------------------------------
class LAPGANTrainer(GANTrainer):
    """GANTrainer's noise, counters, history, sampling and state, with LAPGAN's step: per real batch x,

        pyramid x_0, x_1, x_2 of x;  one noise vector per image, split into z_0, n_1, n_2
        fakes:   level 0: G_0(z_0);   level l: u(x_{l-1}) + G_l(n_l, u(x_{l-1}))  (the real coarser image)
        D step:  every D_l on its real x_l (with u(x_{l-1})) and its fake, BCE on logits;  one update of all
        G step:  every G_l through the updated D_l, non-saturating;  one update of all

    History per step: d_loss and g_loss (sums over the levels) and, per level of side S, d_loss_S, g_loss_S,
    d_real_S, d_fake_S (mean P(real) on the real and the fake batch), acc_real_S, acc_fake_S.
    """

    def __init__(self, G, D, opt_g, opt_d, objective, config, device="cpu", sync_every=None, extensions=()):
        if extensions:
            raise ValueError("lapgan trains without extensions (penalties, averages)")
        super().__init__(G, D, opt_g, opt_d, objective, config, device, sync_every)
        self.history_keys = ("d_loss", "g_loss") + tuple(
            f"{key}_{size}" for size in G.sizes for key in ("d_loss", "g_loss", *self.objective.stat_keys))
        self.history = {key: [] for key in self.history_keys}

    def train_step(self, batch):
        if isinstance(batch, tuple):
            raise ValueError("lapgan is unconditional: it trains on images only")
        images, _ = laplacian_pyramid(batch, len(self.G.levels))
        noise = self.G.split_noise(self.sample_noise(len(batch)))
        inputs = [(noise[0], None, images[0])] + [
            (noise[l], upscale_nearest(images[l - 1]), images[l]) for l in range(1, len(images))]
        fakes = [self._generate(l, plane, cond) for l, (plane, cond, _) in enumerate(inputs)]
        self.D.zero_grad()
        d_stats = [self._discriminator_level(l, real, fake, cond)
                   for l, ((_, cond, real), fake) in enumerate(zip(inputs, fakes))]
        self.opt_d.step()
        self.d_steps += 1
        self.G.zero_grad()
        g_losses = [self._generator_level(l, fake, cond) for l, ((_, cond, _), fake) in enumerate(zip(inputs, fakes))]
        self.opt_g.step()
        self.g_steps += 1
        self._record_levels(d_stats, g_losses)
        return True

    def _generate(self, level, noise, cond):
        """Level 0: G_0(z_0); level l: u(x_{l-1}) + G_l(n_l, u(x_{l-1})). G_l keeps its cache for the G step."""
        G = self.G.levels[level]
        return G.forward(noise, train=True) if cond is None else cond + G.forward((noise, cond), train=True)

    def _d_input(self, image, cond):
        return image if cond is None else (image, cond)

    def _discriminator_level(self, level, real, fake, cond):
        """D_l's gradients (added) on its real and fake batch (BatchNorm: one batch each); (loss, stats)."""
        D, losses, scores = self.D.levels[level], [], []
        for images, is_real in ((real, True), (fake, False)):
            out = D.forward(self._d_input(images, cond), train=True)
            value, dout = self.objective.d_loss(out, is_real, None, self.rng)
            D.backward(dout, input_grad=False)
            losses.append(value)
            scores.append(self.objective.score(out))
        return losses[0] + losses[1], self.objective.stats(*scores)

    def _generator_level(self, level, fake, cond):
        """G_l's gradients through D_l (D's own switched off) on the step's fake; returns G_l's loss."""
        D, G = self.D.levels[level], self.G.levels[level]
        with D.frozen():
            out = D.forward(self._d_input(fake, cond), train=True)
            loss, dout = self.objective.g_loss(out, None)
            dfake = D.backward(dout)
        G.backward(dfake if cond is None else dfake[0], input_grad=False)   # d fake / d residual = I
        return loss

    def _record_levels(self, d_stats, g_losses):
        d_total, g_total = d_stats[0][0], g_losses[0]
        for (d_loss, _), g_loss in zip(d_stats[1:], g_losses[1:]):
            d_total, g_total = d_total + d_loss, g_total + g_loss
        values = [d_total, g_total]
        for (d_loss, stats), g_loss in zip(d_stats, g_losses):
            values += [d_loss, g_loss, *stats]
        self._pending.append((self.xp.stack([self.xp.asarray(v, dtype=self.dtype) for v in values]), True))
        if len(self._pending) >= self.sync_every:
            self.flush()


# -- the recipe ----------------------------------------------------------------------------------
def build_lapgan(o, image_shape):
    channels, size, width = image_shape
    if size != width or size not in IMAGE_SIZES:
        raise ValueError(f"lapgan builds pyramids of square images of size {' or '.join(map(str, IMAGE_SIZES))} "
                         f"(7 -> 14 -> 28, 8 -> 16 -> 32), got {size}x{width}")
    G = LaplacianCascade(o["z_dim"], channels, size, o["ngf"])
    D = Levels([coarse_discriminator(channels, G.sizes[0], o["ndf"])]
               + [residual_discriminator(channels, s, o["ndf"]) for s in G.sizes[1:]])
    betas = (o["beta1"], 0.999)
    opt_g, opt_d = Adam(G, lr=o["lr"], betas=betas), Adam(D, lr=o["lr"], betas=betas)
    config = _config({**o, "k": 1, "z_dim": G.noise_size})   # G's input: the cascade's whole noise vector
    objective = CrossEntropyGame(get_head("logit"), config.g_loss, config.label_smoothing, config.flip_prob)
    return Setup(G, D, opt_g, opt_d, None, config, transforms.to_tanh_range, transforms.from_tanh_range,
                 image_shape, objective=objective)


LAPGAN_DEFAULTS = {key: value for key, value in COMMON.items() if key != "k"}
LAPGAN_DEFAULTS.update({"z_dim": 100, "batch_size": 64, "lr": 2e-4, "beta1": 0.5, "ngf": 32, "ndf": 32,
                        "epochs": 5})


# -- the run -------------------------------------------------------------------------------------
class LAPGANRun(GANRun):
    """``train_run``'s protocol for lapgan: GANRun with LAPGANTrainer, per-level figures and levels.png.
    The final outputs are GANRun's (samples.png, spot-the-fake, summary.json) without accuracy.png: there
    is one D per level, whose accuracies per step are in history.csv (the last step's in summary.json)."""

    trainer_class = LAPGANTrainer
    files = ("levels.png",)

    def write_epoch_outputs(self, out, progress, steps_per_epoch, epoch_metrics=()):
        """history.csv; loss.png and d_outputs.png, a panel per level; progress.png/.gif (the fixed noise's
        cascade after each epoch); levels.png (the last epoch's cascade level by level)."""
        history = history_for_plots(self.trainer.history, steps_per_epoch)
        plots.write_history_csv(out / "history.csv", self.trainer.history)
        sizes = self.setup.G.sizes
        smooth = min(50, max(1, len(history["d_loss"]) // 10))
        plots.save_curve_panels(out / "loss.png", {
            f"level {l}, {s}x{s}" + (" (G_0: images)" if l == 0 else " (G: residuals)"):
                {"D": history[f"d_loss_{s}"], "G": history[f"g_loss_{s}"]} for l, s in enumerate(sizes)},
            smooth=smooth, title="LAPGAN: each level's D and G loss per step (moving averages)")
        plots.save_curve_panels(out / "d_outputs.png", {
            f"level {l}, {s}x{s}": {"D(x)": history[f"d_real_{s}"], "D(G(z))": history[f"d_fake_{s}"]}
            for l, s in enumerate(sizes)}, smooth=smooth,
            title="Each level's mean P(real) on real and fake batches (moving averages)")
        if epoch_metrics:
            plots.save_loss_vs_frechet(out / "loss_vs_frechet.png", history, epoch_metrics)
        epochs = list(range(len(progress)))
        plots.save_progress(out / "progress.png", progress, epochs=epochs)
        plots.save_progress_gif(out / "progress.gif", progress, epochs=epochs)
        save_levels_figure(out / "levels.png", self.setup.G, self.trainer.fixed_noise[:N_LEVEL_SAMPLES])

    @staticmethod
    def set_sampling_stage(G, checkpoint, resolution=None):
        """``scratchgan sample --resolution S``: stop the cascade at level S (e.g. 7 or 14); default: the last."""
        if resolution is not None and resolution not in G.sizes:
            raise ValueError(f"--resolution {resolution}: a lapgan cascade has the levels "
                             f"{', '.join(str(s) for s in G.sizes)}")
        G.output_size = G.sizes[-1] if resolution is None else resolution


def levels_rows(G, noise):
    """The rows of levels.png for ``noise`` (one sample per column), every image enlarged (nearest) to the
    final size, in [0, 1]: the coarse image, then per finer level the upsampled coarser image, the residual
    (0.5 + h / 2: grey is zero) and their sum. Returns (rows, labels)."""
    final = G.sizes[-1]

    def shown(x):
        return backend.asnumpy(upscale_nearest(x, final // x.shape[-1])).astype(np.float32)

    stages = G.stages(noise)
    s0 = G.sizes[0]
    rows, labels = [shown(transforms.from_tanh_range(stages[0]["image"]))], [f"{s0}x{s0}: G0(z)"]
    for l, (stage, size) in enumerate(zip(stages[1:], G.sizes[1:]), start=1):
        half = stage["residual"].dtype.type(0.5)
        rows += [shown(transforms.from_tanh_range(stage["upsampled"])),
                 shown((half + half * stage["residual"]).clip(0, 1)),
                 shown(transforms.from_tanh_range(stage["image"]))]
        labels += [f"{size}x{size}: upsampled", f"{size}x{size}: + G{l} residual", f"{size}x{size}: sum"]
    return rows, labels


def save_levels_figure(path, G, noise):
    """levels.png: the paper's Figure 1 idea, a few samples' generation level by level (``levels_rows``)."""
    output_size = G.output_size
    G.output_size = G.sizes[-1]
    try:
        rows, labels = levels_rows(G, noise)
    finally:
        G.output_size = output_size
    return plots.save_image_strips(path, rows, labels=labels)


LAPGAN = Recipe("lapgan", "LAPGAN (Denton et al. 2015): GANs on a Laplacian pyramid, 7 -> 14 -> 28 (8 -> 16 -> 32); "
                "each finer G makes the residual given the upsampled coarser image", LAPGAN_DEFAULTS, build_lapgan,
                image_sizes=IMAGE_SIZES, family=LAPGANRun)
