"""ProGAN (Karras, Aila, Laine & Lehtinen 2018): one generator and one critic that grow, 4x4 -> 8x8 -> 16x16 -> 32x32.

Training starts at 4 x 4. Each new resolution r is faded in: for ``phase_images`` real images
alpha rises linearly from 0 to 1 while the models blend the new block with the old path (``FadeIn``),

    G: image = (1 - alpha) upsample(toRGB_{r/2}(f_{r/2})) + alpha toRGB_r(block_r(f_{r/2}))
    D: h_{r/2} = (1 - alpha) fromRGB_{r/2}(avgpool(x)) + alpha block_r(fromRGB_r(x))

and the real images are blended the same way (alpha x + (1 - alpha) upsample(avgpool(x)));
then for ``phase_images`` more the new resolution trains alone (stabilisation). The schedule,
``GrowthSchedule``, is a function of the number of real images shown, which the loader counts
and checkpoints save: a run resumes mid-phase where it stopped. Adam's moments are reset at
every phase change, as in the paper's code (``reset_opt_for_new_lod``).

The models (gan/progan_models.py) use equalized learning rate everywhere (``EqualizedConv2d``,
``EqualizedDense``). The loss is WGAN-GP (lambda 10, one critic step per G step) plus the drift term
eps E[D(x)^2] (eps = 0.001) that keeps the critic's output near 0; Adam lr 1e-3, betas (0, 0.99),
eps 1e-8. The penalty's double backward runs through every layer of the critic, the fade-in and the
minibatch layer's cross-sample terms included (docs/layers/minibatch_stddev.md).

MNIST is padded to 32 x 32 with 2 pixels of background on each side; for evaluation the samples
are cropped back to their central 28 x 28. docs/multiscale.md: what is built and tested, and
the measured runs (MNIST beside DCGAN-28, the emoji at 32 x 32).
"""
import math

import numpy as np

from .. import backend, plots
from ..data import transforms
from ..fileio import write_json
from ..optim import Adam
from .multiscale import SamplerEvaluator, crop_center, downscale, upscale_nearest
from .progan_models import ProGANCritic, ProGANGenerator, resolutions_up_to
from .recipes import Recipe, Setup, _integer, _number, _optional
from .run import GANRun, history_for_plots, write_final_outputs
from .trainer import GANConfig
from .wasserstein import GradientPenaltyExtension, WassersteinGame

IMAGE_SIZES = (28, 32)   # 28: MNIST, padded to 32


# -- the growth schedule --------------------------------------------------------------------------
class GrowthSchedule:
    """Phases of ``phase_images`` real images: 4x4 alone, then for each next resolution a fade-in
    (alpha 0 -> 1) and a stabilisation (alpha 1). After the last phase the final resolution goes on."""

    def __init__(self, final, phase_images):
        self.resolutions = resolutions_up_to(final)
        self.phase_images = int(phase_images)
        self.phases = [(self.resolutions[0], False)] + [(r, fade) for r in self.resolutions[1:] for fade in (True, False)]

    @property
    def total_images(self):
        return len(self.phases) * self.phase_images

    def stage(self, images):
        """(phase index, resolution, alpha) after ``images`` real images."""
        index = min(images // self.phase_images, len(self.phases) - 1)
        resolution, fading = self.phases[index]
        alpha = (images - index * self.phase_images) / self.phase_images if fading else 1.0
        return index, resolution, min(alpha, 1.0)

    def describe(self, index):
        resolution, fading = self.phases[index]
        return f"{resolution}x{resolution} {'fade-in' if fading else 'stabilise'}"


def reals_at(batch, resolution, alpha):
    """Real images (N, C, S, S) as the models see them at a stage: averaged down to ``resolution`` and,
    during a fade-in, blended with their coarser version: alpha x + (1 - alpha) upsample(avgpool(x))."""
    x = batch
    while x.shape[-1] > resolution:
        x = downscale(x)
    if alpha < 1:
        f = x.dtype.type
        x = x * f(alpha) + upscale_nearest(downscale(x)) * f(1 - alpha)
    return x


class GrowingLoader:
    """Batches of real images at the schedule's stage: before each batch, the stage after the images
    shown so far is set on the models (and the optimizers reset when a phase begins). ``state_dict``
    holds the count of images shown and the count at which the current stage was set (the start of
    the last batch), so a resumed run continues mid-phase, its models at the stage they were at, and
    resets the optimizers at exactly the batch an uninterrupted run would."""

    def __init__(self, base, schedule, models, optimizers):
        self.base, self.schedule, self.models, self.optimizers = base, schedule, list(models), list(optimizers)
        self.images, self.stage_images, self.phase = 0, 0, None
        self._set_stage(0, reset=False)

    def __len__(self):
        return len(self.base)

    def __iter__(self):
        for batch in self.base:
            self._set_stage(self.images, reset=True)
            self.images += len(batch)
            yield reals_at(batch, self.models[0].resolution, self.models[0].alpha)

    def _set_stage(self, images, reset):
        phase, resolution, alpha = self.schedule.stage(images)
        if reset and self.phase is not None and phase != self.phase:
            for optimizer in self.optimizers:
                reset_optimizer(optimizer)
        self.phase, self.stage_images = phase, images
        for model in self.models:
            model.set_stage(resolution, alpha)

    def state_dict(self):
        return {**self.base.state_dict(), "images": self.images, "stage_images": self.stage_images}

    def load_state_dict(self, state):
        images, stage_images = int(state["images"]), int(state["stage_images"])
        if not 0 <= stage_images <= images:
            raise ValueError(f"images shown {images}, stage set at {stage_images}")
        self.base.load_state_dict(state)
        self.images = images
        self._set_stage(stage_images, reset=False)


def reset_optimizer(optimizer):
    """Forget an optimizer's moments and step count (ProGAN resets Adam when the network changes)."""
    optimizer.state.clear()
    optimizer.t = 0


# -- the game: WGAN-GP with the drift term ---------------------------------------------------------------
class ProGANGame(WassersteinGame):
    """WassersteinGame plus ProGAN's drift term on the real batch, eps mean D(x)^2 (eps = 0.001): it keeps
    the critic's output from drifting far from 0, which the Wasserstein loss alone does not care about.

        critic loss on reals = -mean D(x) + eps mean D(x)^2,  d/dD(x_n) = (-1 + 2 eps D(x_n)) / N
    """

    def __init__(self, drift=0.001):
        self.drift = drift

    def d_loss(self, out, is_real, labels, rng):
        value, grad = super().d_loss(out, is_real, labels, rng)
        if not is_real or not self.drift:
            return value, grad
        f = out.dtype.type
        return value + f(self.drift) * (out * out).mean(), grad + out * f(2 * self.drift / len(out))


# -- the recipe -------------------------------------------------------------------------------------------
def build_progan(o, image_shape):
    channels, size, width = image_shape
    if size != width or size not in IMAGE_SIZES:
        raise ValueError(f"progan grows square images of size {' or '.join(map(str, IMAGE_SIZES))} (28: MNIST, "
                         f"padded to 32), got {size}x{width}")
    final = 32
    G = ProGANGenerator(o["z_dim"], channels, final, o["width"])
    D = ProGANCritic(channels, final, o["width"], o["group_size"])
    betas = (o["beta1"], o["beta2"])
    opt_g, opt_d = Adam(G, lr=o["lr"], betas=betas), Adam(D, lr=o["lr"], betas=betas)
    pad = (final - size) // 2

    def preprocess(images):
        if pad:
            images = np.pad(images, ((0, 0), (0, 0), (pad, pad), (pad, pad)))   # background 0 -> -1
        return transforms.to_tanh_range(images)

    config = GANConfig(z_dim=o["z_dim"], batch_size=o["batch_size"], k=1, seed=o["seed"])
    return Setup(G, D, opt_g, opt_d, None, config, preprocess, transforms.from_tanh_range, (channels, final, final),
                 objective=ProGANGame(o["drift"]), extensions=[GradientPenaltyExtension(o["gp"])])


def _batch_fits_groups(o):
    if o["batch_size"] % min(o["group_size"], o["batch_size"]):
        raise ValueError(f"option batch_size ({o['batch_size']}) must be a multiple of group_size "
                         f"({o['group_size']}): the minibatch standard deviation splits each batch into groups")


PROGAN_DEFAULTS = {"z_dim": 128, "width": 64, "group_size": 4, "batch_size": 64, "lr": 1e-3, "beta1": 0.0,
                   "beta2": 0.99, "gp": 10.0, "drift": 0.001, "phase_images": 30000, "seed": 0, "epochs": None,
                   "g_steps": None}
PROGAN_CHECKS = {"width": _integer(1), "group_size": _integer(1), "beta2": _number(0, 1), "gp": _number(0, None),
                 "drift": _number(0, None), "phase_images": _integer(1), "epochs": _optional(_integer(1))}


# -- the run ----------------------------------------------------------------------------------------------
class ProGANRun(GANRun):
    """``train_run``'s protocol for progan: GANRun's trainer (WGAN-GP game, penalty extension) on batches
    from a ``GrowingLoader``; ``--epochs`` defaults to as many as the schedule needs."""

    files = ()

    def __init__(self, recipe, options, images, device):
        super().__init__(recipe, options, images, device)
        G, D = self.setup.G, self.setup.D
        self.final = G.resolutions[-1]
        self.crop = images.shape[-1] if images.shape[-1] < self.final else None   # MNIST: evaluate the 28x28 centre
        self.schedule = GrowthSchedule(self.final, options["phase_images"])
        per_epoch = len(self.loader) * options["batch_size"]
        if options["epochs"] is None:   # the whole schedule (the run's options record the number)
            options["epochs"] = max(1, math.ceil(self.schedule.total_images / per_epoch))
        self.loader = GrowingLoader(self.loader, self.schedule, (G, D), (self.setup.opt_g, self.setup.opt_d))
        self.batch_size = options["batch_size"]

    # stages, samples --------------------------------------------------------------------------------
    def progress_row(self):
        """The fixed noise's images at the current stage, enlarged (nearest) to the final resolution."""
        images = self.setup.to_unit(self.trainer.sample(noise=self.trainer.fixed_noise))
        return backend.asnumpy(upscale_nearest(images, self.final // images.shape[-1])).astype(np.float32)

    def evaluation_images(self, n, seed):
        """n samples at the current stage, enlarged to the final resolution, cropped to the data's size."""
        trainer = self.trainer
        noise = backend.RNG(seed).normal(trainer.noise_dims(n), dtype=trainer.dtype, xp=trainer.xp)
        images = self.setup.to_unit(trainer.sample(noise=noise))
        images = upscale_nearest(images, self.final // images.shape[-1])
        return crop_center(images, self.crop) if self.crop else images

    def evaluator(self, dataset, data_dir, quiet):
        evaluator = SamplerEvaluator.create(dataset, data_dir, self.images, quiet)
        if evaluator is not None:
            evaluator.sampler = self.evaluation_images
        return evaluator

    # figures ------------------------------------------------------------------------------------------
    def write_epoch_outputs(self, out, progress, steps_per_epoch, epoch_metrics=()):
        """history.csv, loss.png (losses above the alpha and resolution schedule), d_outputs.png, and the
        growth: progress.png and progress.gif, the fixed noise's images after each epoch, labelled by stage."""
        history = history_for_plots(self.trainer.history, steps_per_epoch)
        plots.write_history_csv(out / "history.csv", self.trainer.history)
        save_growth_loss_plot(out / "loss.png", history, self.schedule, self.batch_size)
        plots.save_loss_plot(out / "d_outputs.png", history, keys=("d_real", "d_fake"),
                             title="Critic outputs: mean D(x) on real and D(G(z)) on fake batches")
        if epoch_metrics:
            plots.save_loss_vs_frechet(out / "loss_vs_frechet.png", history, epoch_metrics)
        labels = [f"epoch {e}: {stage}" for e, stage in enumerate(self.stage_labels(len(progress), steps_per_epoch))]
        plots.save_image_strips(out / "progress.png", progress, labels=labels)
        plots.save_progress_gif(out / "progress.gif", progress, captions=labels)

    def stage_labels(self, epochs, steps_per_epoch):
        """The stage of the last batch of each of ``epochs`` epochs (epoch 0: the start)."""
        labels = []
        for epoch in range(epochs):
            _, r, alpha = self.schedule.stage(max(0, (epoch * steps_per_epoch - 1) * self.batch_size))
            labels.append(f"{r}x{r}" + (f", alpha {alpha:.2f}" if alpha < 1 else ""))
        return labels

    def write_final_outputs(self, out, options, meta):
        G = self.setup.G   # real images as the models see them at the stage reached (a run may stop early)
        summary = write_final_outputs(out, self.trainer, self.setup, reals_at(self.data, G.resolution, G.alpha),
                                      options, meta)
        summary["stage"] = {"resolution": self.setup.G.resolution, "alpha": self.setup.G.alpha,
                            "images_shown": self.loader.images, "phase": self.schedule.describe(self.loader.phase)}
        write_json(out / "summary.json", summary)
        return summary

    # scratchgan sample ----------------------------------------------------------------------------------
    @staticmethod
    def set_sampling_stage(G, checkpoint, resolution=None):
        """Set a progan generator rebuilt from ``checkpoint`` to the stage it trained at last (alpha as
        trained), or to ``resolution`` (alpha 1), which must be one the run has reached."""
        reached, alpha = stage_trained(checkpoint, G.resolutions[-1])
        if resolution is None:
            G.set_stage(reached, alpha)
        elif resolution not in G.resolutions or resolution > reached:
            raise ValueError(f"--resolution {resolution}: this run has grown to {reached}x{reached}; choose one of "
                             f"{', '.join(str(r) for r in G.resolutions if r <= reached)}")
        else:
            G.set_stage(resolution, 1.0)

    @staticmethod
    def reals_at_sampling_stage(reals, checkpoint):
        """Real images (N, C, final, final), preprocessed, as the models see them at the stage
        ``set_sampling_stage`` sets by default: the report's quiz sets them beside that stage's samples,
        as spot_the_fake.png does."""
        return reals_at(reals, *stage_trained(checkpoint, reals.shape[-1]))


def stage_trained(checkpoint, final):
    """(resolution, alpha) of the stage a progan run's ``checkpoint`` trained at last."""
    images = (checkpoint.meta.get("loader") or {}).get("stage_images", 0)
    _, resolution, alpha = GrowthSchedule(final, checkpoint.meta["options"]["phase_images"]).stage(int(images))
    return resolution, alpha


def save_growth_loss_plot(path, history, schedule, batch_size):
    """The critic's loss and Wasserstein estimate per step, and the gradient penalty, above the
    schedule: alpha (0 -> 1 in each fade-in) and the resolution, per step."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from ..fileio import atomic_write
    from ..plots.common import target
    from ..plots.curves import moving_average
    steps = np.arange(1, len(history["d_loss"]) + 1)
    stages = [schedule.stage((s - 1) * batch_size) for s in steps]
    fig = Figure(figsize=(8, 6.5), dpi=100)
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2.2, 1]})
    smooth = max(1, min(50, len(steps) // 20))
    for key, label, color in (("d_loss", "critic loss (with penalty and drift)", "tab:blue"),
                              ("wasserstein", "Wasserstein estimate E D(x) - E D(G(z))", "tab:green"),
                              ("g_loss", "G loss", "tab:orange"), ("gradient_penalty", "gradient penalty", "tab:red")):
        if key in history:
            values = np.asarray(history[key], np.float64)
            top.plot(steps, values, color=color, alpha=0.2, linewidth=0.7)
            top.plot(steps, moving_average(values, smooth), color=color, linewidth=1.5, label=label)
    top.set_title("ProGAN: losses per step (moving averages) and the growth schedule")
    top.set_ylabel("loss")
    top.grid(alpha=0.3)
    top.legend(loc="best", fontsize="small")
    bottom.plot(steps, [a for _, _, a in stages], color="tab:purple", label="alpha (fade-in)")
    bottom.set_ylim(-0.05, 1.05)
    bottom.set_ylabel("alpha")
    bottom.set_xlabel("step (mini-batch)")
    bottom.grid(alpha=0.3)
    resolution_axis = bottom.twinx()
    resolution_axis.step(steps, [r for _, r, _ in stages], color="tab:gray", where="post", label="resolution")
    resolution_axis.set_yscale("log", base=2)
    resolution_axis.set_yticks(schedule.resolutions, [f"{r}x{r}" for r in schedule.resolutions])
    resolution_axis.set_ylabel("resolution")
    bottom.legend(loc="upper left", fontsize="small")
    fig.subplots_adjust(left=0.1, right=0.88, top=0.93, bottom=0.09, hspace=0.08)
    path = target(path)
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=100)
    return path


PROGAN = Recipe("progan", "ProGAN (Karras et al. 2018): G and D grow 4 -> 8 -> 16 -> 32 with fade-ins; equalized lr, "
                "PixelNorm, minibatch stddev, WGAN-GP + drift", PROGAN_DEFAULTS, build_progan, image_sizes=IMAGE_SIZES,
                checks=PROGAN_CHECKS, check_together=_batch_fits_groups, family=ProGANRun)
