"""CycleGAN (Zhu, Park, Isola & Efros 2017): unpaired translation between two image domains A and B.

Two generators, G: A -> B and F: B -> A, and two least-squares discriminators, D_A (is this an
A image?) and D_B. Per batch of a's and b's (in [-1, 1]):

    generators:  L = L_lsgan(D_B(G(a)) -> real) + L_lsgan(D_A(F(b)) -> real)
                     + lambda_cyc (|F(G(a)) - a|_1 + |G(F(b)) - b|_1)
                     [+ lambda_id lambda_cyc (|G(b) - b|_1 + |F(a) - a|_1)]     (optional identity loss)
    critics:     D_A: 1/2 (D_A(a) - 1)^2 + 1/2 D_A(pool_A(F(b)))^2, and D_B likewise,

with pools of the last 50 generated images (half of each fake batch drawn from it), Adam
(2e-4, beta1 0.5) and a learning rate constant for the first half of the epochs, then falling
linearly to 0 (``decay_epochs``). Models at 32 x 32 (64 x 64 adds one stride on each side):

    G, F:  Conv 4x4 s2 -> IN -> ReLU  (3 -> ngf, 16 x 16);  Conv 4x4 s2 -> IN -> ReLU  (ngf -> 2 ngf, 8 x 8)
           n_blocks x Residual(ReflectionPad 1 -> Conv 3x3 -> IN -> ReLU -> ReflectionPad 1 -> Conv 3x3 -> IN)
           decoder "transposed": ConvTranspose 4x4 s2 -> IN -> ReLU, ConvTranspose 4x4 s2 (-> 3) -> tanh
           decoder "upsample":   [Upsample x2 (nearest) -> ReflectionPad 1 -> Conv 3x3] in place of each
    D_A, D_B (PatchGAN): Conv 4x4 s2 -> LReLU, [Conv 4x4 s2 -> IN -> LReLU] x 2, Conv 3x3 -> a 4 x 4 map of scores

Every emoji has its counterpart in the other style, so translations are measured against the
truth on the held-out 20% (``evaluate_translation``): mean L1 from G(a) to the true b, against
the untranslated a and a random b; how often the true b is among the 5 held-out b's nearest G(a);
and how often a style classifier (``train_style_classifier``) calls G(a) a B image.
"""
import json
from dataclasses import dataclass

import numpy as np

from .. import backend, losses, plots
from .. import layers as L
from ..data import BatchLoader, transforms
from ..fileio import write_json
from ..optim import Adam
from .image_to_image import ImageToImageRun, StepHistory, StepHistoryTrainer, set_learning_rate
from .objectives import LeastSquaresGame
from .recipes import Recipe, _integer, _number, _optional

IMAGE_SIZES = (32, 64)
DECODERS = ("transposed", "upsample")


# -- models ---------------------------------------------------------------------------------
def cyclegan_generator(size=32, ngf=32, n_blocks=1, decoder="transposed", channels=3):
    """(N, C, size, size) in [-1, 1] -> the same shape, in [-1, 1] (module docstring)."""
    n_down = {32: 2, 64: 3}[size]
    widths = [ngf * 2 ** i for i in range(n_down)]
    layers, cin = [], channels
    for width in widths:
        layers += [L.Conv2d(cin, width, 4, 2, 1, bias=False, init="normal_0.02"), L.InstanceNorm(width, affine=True),
                   L.ReLU()]
        cin = width
    for _ in range(n_blocks):
        layers.append(L.Residual(L.Chain(
            L.ReflectionPad2d(1), L.Conv2d(cin, cin, 3, bias=False, init="normal_0.02"), L.InstanceNorm(cin, affine=True),
            L.ReLU(), L.ReflectionPad2d(1), L.Conv2d(cin, cin, 3, bias=False, init="normal_0.02"),
            L.InstanceNorm(cin, affine=True))))
    for width in widths[-2::-1]:
        layers += [*_up(cin, width, decoder, bias=False), L.InstanceNorm(width, affine=True), L.ReLU()]
        cin = width
    layers += [*_up(cin, channels, decoder, bias=True), L.Tanh()]
    return L.Chain(*layers)


def _up(cin, cout, decoder, bias):
    if decoder == "transposed":
        return [L.ConvTranspose2d(cin, cout, 4, 2, 1, bias=bias, init="normal_0.02")]
    return [L.Upsample(2), L.ReflectionPad2d(1), L.Conv2d(cin, cout, 3, bias=bias, init="normal_0.02")]


def patch_discriminator(size=32, ndf=32, channels=3):
    """(N, C, size, size) -> (N, 1, 4, 4) LSGAN scores, one per overlapping patch."""
    n_down = {32: 3, 64: 4}[size]
    layers = [L.Conv2d(channels, ndf, 4, 2, 1, init="normal_0.02"), L.LeakyReLU(0.2)]
    cin = ndf
    for i in range(1, n_down):
        cout = ndf * 2 ** min(i, 3)
        layers += [L.Conv2d(cin, cout, 4, 2, 1, bias=False, init="normal_0.02"), L.InstanceNorm(cout, affine=True),
                   L.LeakyReLU(0.2)]
        cin = cout
    layers.append(L.Conv2d(cin, 1, 3, 1, 1, init="normal_0.02"))
    return L.Chain(*layers)


# -- the history pool -----------------------------------------------------------------------
class ImagePool:
    """The last ``size`` generated images (Shrivastava et al. 2017, as CycleGAN uses it): ``query(batch)``
    returns a batch where each image is, with probability 1/2 once the pool is full, swapped for a
    stored older one (which the new image replaces). D then sees fakes from several past G's."""

    def __init__(self, size=50, seed=0):
        self.size, self.images = size, []
        self.rng = np.random.default_rng(seed)

    def query(self, batch):
        if self.size == 0:
            return batch
        xp = backend.get_xp(batch)
        out = []
        for image in batch:
            if len(self.images) < self.size:
                self.images.append(image.copy())
                out.append(image)
            elif self.rng.random() < 0.5:
                k = int(self.rng.integers(self.size))
                out.append(self.images[k])
                self.images[k] = image.copy()
            else:
                out.append(image)
        return xp.stack(out)

    def state_dict(self):
        images = np.stack([backend.asnumpy(im) for im in self.images]) if self.images else np.zeros((0,))
        rng = np.frombuffer(json.dumps(self.rng.bit_generator.state).encode(), dtype=np.uint8)
        return {"images": images, "rng": rng}

    def load_state_dict(self, state, device="cpu"):
        self.images = [backend.to_device(im, device) for im in state["images"]] if state["images"].ndim > 1 else []
        self.rng.bit_generator.state = json.loads(bytes(state["rng"]).decode())


# -- the training step ----------------------------------------------------------------------
class CycleGANTrainer(StepHistoryTrainer):
    """One step per batch (a, b) of A and B images in [-1, 1]: the generators' update (both cycles,
    each network's forward followed by its backward before it runs again), then both critics' on
    the real images and pooled fakes. History per step (keys below): g_loss (the generators' whole
    objective), g_adv (G: a -> b fooling D_B), f_adv (F: b -> a fooling D_A), cycle_a, cycle_b,
    identity, d_loss (D_A + D_B), d_a, d_b, and each critic's mean score on real and fake batches.
    """

    KEYS = ("g_loss", "d_loss", "g_adv", "f_adv", "cycle_a", "cycle_b", "identity", "d_a", "d_b",
            "d_a_real", "d_a_fake", "d_b_real", "d_b_fake")

    def __init__(self, G, F, D_A, D_B, opt_g, opt_f, opt_da, opt_db, lambda_cycle=10.0, lambda_identity=0.0,
                 pool_size=50, seed=0, device="cpu"):
        self.G, self.F, self.D_A, self.D_B = G, F, D_A, D_B
        self.opt_g, self.opt_f, self.opt_da, self.opt_db = opt_g, opt_f, opt_da, opt_db
        self.lambda_cycle, self.lambda_identity, self.device = lambda_cycle, lambda_identity, device
        self.game = LeastSquaresGame()
        self.pool_a, self.pool_b = ImagePool(pool_size, seed + 11), ImagePool(pool_size, seed + 12)
        self.steps = StepHistory(self.KEYS, device)

    def extension_arrays(self):
        """The history pools, saved in checkpoints under ext/ as the GAN trainer's extensions are."""
        return {f"pool_a/{k}": v for k, v in self.pool_a.state_dict().items()} | \
               {f"pool_b/{k}": v for k, v in self.pool_b.state_dict().items()}

    def load_extension_arrays(self, arrays):
        for name, pool in (("pool_a", self.pool_a), ("pool_b", self.pool_b)):
            pool.load_state_dict({k: arrays[f"{name}/{k}"] for k in ("images", "rng")}, self.device)

    def train_step(self, batch):
        a, b = batch
        fake_a, fake_b, (g_adv, f_adv, cycle_a, cycle_b, identity) = self.generator_step(a, b)
        self.opt_g.step()
        self.opt_f.step()
        d_a, d_a_real, d_a_fake = self._critic_step(self.D_A, self.opt_da, a, self.pool_a.query(fake_a))
        d_b, d_b_real, d_b_fake = self._critic_step(self.D_B, self.opt_db, b, self.pool_b.query(fake_b))
        self.steps.d_steps += 1
        self.steps.record([self.generator_objective(g_adv, f_adv, cycle_a, cycle_b, identity), d_a + d_b,
                           g_adv, f_adv, cycle_a, cycle_b, identity, d_a, d_b, d_a_real, d_a_fake, d_b_real, d_b_fake])

    def generator_step(self, a, b):
        """The generators' gradients (into G.grads and F.grads, from zero) for batch (a, b); no update.
        Returns (F(b), G(a), (g_adv, f_adv, cycle_a, cycle_b, identity))."""
        for model in (self.G, self.F):
            model.zero_grad()
        fake_b, g_adv, cycle_a = self._cycle(a, self.G, self.F, self.D_B)
        fake_a, f_adv, cycle_b = self._cycle(b, self.F, self.G, self.D_A)
        identity = self._identity(a, b) if self.lambda_identity else self._zero(a)
        return fake_a, fake_b, (g_adv, f_adv, cycle_a, cycle_b, identity)

    def generator_objective(self, g_adv, f_adv, cycle_a, cycle_b, identity):
        """The generators' loss: both adversarial terms + lambda_cyc (cycles + lambda_id identity)."""
        lam, lam_id = self.lambda_cycle, self.lambda_identity
        return g_adv + f_adv + lam * (cycle_a + cycle_b) + lam * lam_id * identity

    def _cycle(self, x, forward_net, backward_net, critic):
        """fake = forward_net(x), adversarial loss of critic(fake), cycle loss |backward_net(fake) - x|_1;
        back-propagates both into the two generators' gradients. Returns (fake, adversarial, cycle)."""
        fake = forward_net.forward(x, train=True)
        with critic.frozen():
            adversarial, dscore = self.game.g_loss(critic.forward(fake, train=True))
            dfake = critic.backward(dscore)
        rec = backward_net.forward(fake, train=True)
        cycle, drec = losses.l1(rec, x)
        dfake = dfake + backward_net.backward(drec * rec.dtype.type(self.lambda_cycle))
        forward_net.backward(dfake, input_grad=False)
        return fake, adversarial, cycle

    def _identity(self, a, b):
        """|G(b) - b|_1 + |F(a) - a|_1 (each a mean), weighted lambda_id lambda_cyc in the gradients."""
        weight = a.dtype.type(self.lambda_identity * self.lambda_cycle)
        total = 0
        for net, x in ((self.G, b), (self.F, a)):
            value, grad = losses.l1(net.forward(x, train=True), x)
            net.backward(grad * weight, input_grad=False)
            total = total + value
        return total

    def _critic_step(self, critic, optimizer, real, fake):
        critic.zero_grad()
        total, scores = 0, []
        for images, is_real in ((real, True), (fake, False)):
            out = critic.forward(images, train=True)
            value, grad = self.game.d_loss(out, is_real)
            critic.backward(grad, input_grad=False)
            total = total + value
            scores.append(self.game.score(out).mean())
        optimizer.step()
        return total, scores[0], scores[1]

    def _zero(self, x):
        return backend.get_xp(x).zeros((), dtype=x.dtype)


def translate_images(net, images, device="cpu", batch_size=200):
    """A generator (eval mode) on images in [0, 1], (N, C, H, W) -> (N, C, H, W) in [0, 1] (NumPy float32)."""
    out = []
    for start in range(0, len(images), batch_size):
        x = backend.to_device(np.asarray(images[start:start + batch_size], np.float32) * 2 - 1, device)
        out.append(backend.asnumpy(transforms.from_tanh_range(net.forward(x, train=False, keep_cache=False))))
    return np.concatenate(out).astype(np.float32)


# -- the recipe -----------------------------------------------------------------------------
@dataclass
class CycleGANSetup:
    G: L.Chain
    F: L.Chain
    D_A: L.Chain
    D_B: L.Chain
    optimizers: dict


def build_cyclegan(o, image_shape):
    channels, size, _ = image_shape
    if channels != 3 or size not in IMAGE_SIZES or image_shape[2] != size:
        raise ValueError(f"cyclegan translates RGB images of size {' or '.join(map(str, IMAGE_SIZES))}, "
                         f"got {channels}x{size}x{image_shape[2]}")
    G, F = (cyclegan_generator(size, o["ngf"], o["n_blocks"], o["decoder"]) for _ in range(2))
    D_A, D_B = (patch_discriminator(size, o["ndf"]) for _ in range(2))
    betas = (o["beta1"], 0.999)
    optimizers = {f"opt_{name}": Adam(net, lr=o["lr"], betas=betas)
                  for name, net in (("g", G), ("f", F), ("d_a", D_A), ("d_b", D_B))}
    return CycleGANSetup(G, F, D_A, D_B, optimizers)


def learning_rate(o, epoch):
    """Adam's rate in (0-based) ``epoch``: lr for the first epochs - decay_epochs, then falling linearly
    to lr / (decay_epochs + 1) in the last (CycleGAN's schedule; decay_epochs None: half the epochs)."""
    decay = o["epochs"] // 2 if o["decay_epochs"] is None else o["decay_epochs"]
    constant = o["epochs"] - decay
    return o["lr"] * (1.0 - max(0, epoch + 1 - constant) / (decay + 1))


def _is_spec(value):
    from ..data.emoji import parse_image_spec
    try:
        parse_image_spec(value)
        return True
    except ValueError:
        return False


CYCLEGAN_CHECKS = {
    "n_blocks": _integer(0), "ngf": _integer(1), "ndf": _integer(1), "pool_size": _integer(0),
    "lambda_cycle": _number(0, None), "lambda_identity": _number(0, None),
    "decay_epochs": _optional(_integer(0)),
    "decoder": ((lambda v: v in DECODERS), f"one of {', '.join(DECODERS)}"),
    "dataset_a": (_is_spec, "emoji-google, emoji-twitter or folder:PATH"),
    "dataset_b": (_is_spec, "emoji-google, emoji-twitter or folder:PATH"),
}


# -- data: unpaired batches -------------------------------------------------------------------
class UnpairedLoader:
    """Batches (a, b): the A images in shuffled epochs (a BatchLoader: an epoch is one pass over A),
    the B images in an independent shuffled stream of their own, so a batch never pairs an emoji
    with its counterpart on purpose. ``state_dict`` covers both (JSON-able, as run.py saves it)."""

    def __init__(self, a, b, batch_size, seed=0, device="cpu"):
        if batch_size > len(b):
            raise ValueError(f"batch_size {batch_size} is larger than the {len(b)} B images")
        self.a = BatchLoader(a, batch_size, shuffle=True, drop_last=True, seed=seed, device=device)
        self.b, self.batch_size, self.device = b, batch_size, device
        self._rng, self._order = np.random.default_rng(seed + 1), []

    def __len__(self):
        return len(self.a)

    def __iter__(self):
        for batch_a in self.a:
            yield batch_a, self._next_b()

    def _next_b(self):
        while len(self._order) < self.batch_size:
            self._order = list(self._order) + self._rng.permutation(len(self.b)).tolist()
        index, self._order = self._order[:self.batch_size], self._order[self.batch_size:]
        return backend.to_device(self.b[index], self.device)

    def state_dict(self):
        return {"a": self.a.state_dict(), "b_rng": self._rng.bit_generator.state, "b_order": list(self._order),
                "batch": self.a.state_dict()["batch"]}

    def load_state_dict(self, state):
        self.a.load_state_dict(state["a"])
        self._rng.bit_generator.state = state["b_rng"]
        self._order = list(state["b_order"])


# -- the run: figures per epoch, evaluation against the true counterparts ------------------------
class CycleGANRun(ImageToImageRun):
    """``train_run``'s protocol (run.GANRun) for cyclegan; ``images`` is (A images, B images), uint8 training splits."""

    files = ("losses.png", "translations.png", "heldout.csv", "heldout.png", "style_classifier.npz")
    N_FIXED = 6

    @staticmethod
    def load_training_data(options, data_dir=None, image_size=None, quiet=False):
        """((A, B) uint8 training splits, identity, dataset name) as ``scratchgan train cyclegan`` loads them."""
        from ..data.emoji import load_domain
        size = image_size or 32
        a, _, identity_a = load_domain(options["dataset_a"], "train", data_dir, size, quiet=quiet)
        b, _, identity_b = load_domain(options["dataset_b"], "train", data_dir, size, quiet=quiet)
        dataset = f"{options['dataset_a']} <-> {options['dataset_b']}"
        return (a, b), {"dataset": dataset, "a": identity_a, "b": identity_b}, dataset

    def __init__(self, recipe, options, images, device):
        images_a, images_b = images
        self.options, self.device = options, device
        self.setup = setup = recipe.setup(options, tuple(images_a.shape[1:]))
        self.networks = {"G": setup.G, "F": setup.F, "D_A": setup.D_A, "D_B": setup.D_B}
        for net in self.networks.values():
            net.to(device)
        self.optimizers = setup.optimizers
        o = options
        self.trainer = CycleGANTrainer(setup.G, setup.F, setup.D_A, setup.D_B, *setup.optimizers.values(),
                                       o["lambda_cycle"], o["lambda_identity"], o["pool_size"], o["seed"], device)
        unpaired = UnpairedLoader(transforms.to_tanh_range(images_a), transforms.to_tanh_range(images_b),
                                  o["batch_size"], o["seed"], device)
        self.loader = ScheduledLoader(unpaired, options, self.optimizers.values())
        self.fixed_a = transforms.to_float(images_a[:self.N_FIXED])   # replaced by held-out images (evaluator)
        self.fixed_b = transforms.to_float(images_b[:self.N_FIXED])
        self.heldout = None

    def evaluator(self, dataset, data_dir, quiet):
        self.heldout = HeldOut.load(self.options, data_dir, self.fixed_a.shape[-1], quiet)
        spread = np.linspace(0, len(self.heldout.a) - 1, self.N_FIXED).astype(int)   # not just the first names
        self.fixed_a, self.fixed_b = self.heldout.a[spread], self.heldout.b[spread]
        return self.heldout

    def progress_row(self):
        """[a, G(a), F(G(a))] for each fixed a, then [b, F(b), G(F(b))] for each fixed b: (6 k, 3, H, W) in [0, 1]."""
        G, F = self.setup.G, self.setup.F
        rows = []
        for x, forward, backward in ((self.fixed_a, G, F), (self.fixed_b, F, G)):
            there = translate_images(forward, x, self.device)
            back = translate_images(backward, there, self.device)
            rows.append(np.stack([x, there, back], axis=1))
        return np.concatenate(rows).reshape(-1, *self.fixed_a.shape[1:]).astype(np.float32)

    def epoch_metrics(self, evaluator, epoch):
        return {"epoch": epoch, **evaluator.l1_scores(self.setup.G, self.setup.F, self.device)}

    def final_metrics(self, evaluator, n):
        return evaluator.final(self.setup.G, self.setup.F, self.device, self.options["seed"])

    def write_epoch_outputs(self, out, progress, steps_per_epoch, epoch_metrics=()):
        from .run import history_for_plots
        history = {k: v for k, v in history_for_plots(self.trainer.history, steps_per_epoch).items()}
        plots.write_history_csv(out / "history.csv", self.trainer.history)
        save_loss_panels(out / "losses.png", history, self.options)
        k = len(progress[0]) // 6   # fixed a's (and b's) per row
        grids = [translation_grid(row, k) for row in progress]
        plots.save_grid(out / "translations.png", grids[-1], nrow=6)
        plots.save_progress_gif(out / "progress.gif", grids, nrow=6, epochs=range(len(grids)))
        translated = [row.reshape(2 * k, 3, *row.shape[1:])[:k, 1] for row in progress]
        rows = [progress[0].reshape(2 * k, 3, *progress[0].shape[1:])[:k, 0], *translated]
        labels = ["a", *[f"G(a), epoch {e}" for e in range(len(progress))]]
        if self.heldout is not None:
            rows.append(self.heldout.b_true[np.linspace(0, len(self.heldout.b_true) - 1, k).astype(int)])
            labels.append("true b")
        plots.save_image_strips(out / "progress.png", rows, labels=labels)

    def write_final_outputs(self, out, options, meta):
        summary = {**meta, "steps": self.trainer.d_steps,
                   "final": {k: self.trainer.last(k) for k in self.trainer.history}}
        write_json(out / "summary.json", summary)
        return summary


class ScheduledLoader:
    """An UnpairedLoader that sets CycleGAN's learning rate (``learning_rate``) on the optimizers
    at the start of each epoch; otherwise the loader itself (length, state)."""

    def __init__(self, loader, options, optimizers):
        self.loader, self.options, self.optimizers = loader, options, list(optimizers)

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        epoch = self.loader.a.epoch   # epochs begun so far: the 0-based index of the one starting (or resumed)
        set_learning_rate(self.optimizers, learning_rate(self.options, epoch))
        return iter(self.loader)

    def state_dict(self):
        return self.loader.state_dict()

    def load_state_dict(self, state):
        self.loader.load_state_dict(state)


def translation_grid(row, k):
    """A progress row as k rows [a, G(a), F(G(a)), b, F(b), G(F(b))] (6 k images, row-major)."""
    triples = row.reshape(2, k, 3, *row.shape[1:])
    return np.concatenate([triples[0], triples[1]], axis=1).reshape(-1, *row.shape[1:])


def save_loss_panels(path, history, options):
    lam = options["lambda_cycle"]
    panels = {"G: A -> B, LSGAN loss against D_B": {"G": history["g_adv"]},
              "F: B -> A, LSGAN loss against D_A": {"F": history["f_adv"]},
              "D_A (A real vs F(b)), LSGAN": {"D_A": history["d_a"]},
              "D_B (B real vs G(a)), LSGAN": {"D_B": history["d_b"]},
              f"cycle L1 (weighted x{lam:g} in the loss)": {"|F(G(a)) - a|": history["cycle_a"],
                                                            "|G(F(b)) - b|": history["cycle_b"]},
              "critic scores (targets: real 1, fake 0)": {"D_A(a)": history["d_a_real"], "D_A(F(b))": history["d_a_fake"],
                                                         "D_B(b)": history["d_b_real"], "D_B(G(a))": history["d_b_fake"]}}
    if options["lambda_identity"]:
        panels["identity L1"] = {"|G(b) - b| + |F(a) - a|": history["identity"]}
    plots.save_curve_panels(path, panels, smooth=min(25, max(1, len(history["g_adv"]) // 4)),
                            title="The four networks' losses per step (moving average)")


class HeldOut:
    """The held-out 20% of both domains (``data.emoji.split_of``), paired by file name where both have it."""

    def __init__(self, a, b, a_names, b_names, options, data_dir=None):
        common = sorted(set(a_names) & set(b_names))
        index_a, index_b = {n: i for i, n in enumerate(a_names)}, {n: i for i, n in enumerate(b_names)}
        self.names = common
        self.a = a[[index_a[n] for n in common]] if common else a     # in [0, 1]
        self.b = b[[index_b[n] for n in common]] if common else b
        self.b_true = self.b if common else None
        self.paired = bool(common)
        self.options, self.data_dir = options, data_dir

    @classmethod
    def load(cls, options, data_dir, size, quiet=False):
        from ..data.emoji import load_domain
        a, a_names, _ = load_domain(options["dataset_a"], "test", data_dir, size, quiet=quiet)
        b, b_names, _ = load_domain(options["dataset_b"], "test", data_dir, size, quiet=quiet)
        return cls(transforms.to_float(a), transforms.to_float(b), a_names, b_names, options, data_dir)

    def l1_scores(self, G, F, device):
        """Mean L1 (pixels in [0, 1]) of G(a) to the true b and F(b) to the true a, beside the untranslated inputs."""
        if not self.paired:
            return {}
        g_a, f_b = translate_images(G, self.a, device), translate_images(F, self.b, device)
        return {"l1_g": mean_l1(g_a, self.b), "l1_f": mean_l1(f_b, self.a), "l1_identity": mean_l1(self.a, self.b),
                "n": len(self.a)}

    def final(self, G, F, device, seed=0):
        """``evaluate_translation`` of both directions, with a style classifier trained on the training split."""
        from .cyclegan_eval import evaluate_translation, train_style_classifier
        classifier = train_style_classifier(self.options, self.a.shape[-1], seed=seed, device=device,
                                            data_dir=self.data_dir)
        self.classifier = classifier
        g_a, f_b = translate_images(G, self.a, device), translate_images(F, self.b, device)
        return evaluate_translation(self.a, self.b, g_a, f_b, classifier, seed=seed)

    def write_epoch_metrics(self, out, epoch_metrics, quiet):
        if not epoch_metrics or "l1_g" not in epoch_metrics[-1]:
            return
        columns = {k: [m[k] for m in epoch_metrics] for k in epoch_metrics[0]}
        plots.write_history_csv(out / "heldout.csv", columns)
        n = len(columns["epoch"])
        plots.save_curve_panels(out / "heldout.png", {
            "G(a) to the true b": {"G(a)": columns["l1_g"], "a itself (untranslated)": columns["l1_identity"]},
            "F(b) to the true a": {"F(b)": columns["l1_f"], "b itself (untranslated)": columns["l1_identity"]}},
            x=columns["epoch"], xlabel="epoch",
            title=f"Mean L1 on the {columns['n'][-1]} held-out pairs, lower is better ({n} epochs)")
        if not quiet:
            print(f"epoch {columns['epoch'][-1]}: held-out L1 G(a)-b {columns['l1_g'][-1]:.4f}, F(b)-a "
                  f"{columns['l1_f'][-1]:.4f} (untranslated {columns['l1_identity'][-1]:.4f})")

    @staticmethod
    def format(row):
        from .cyclegan_eval import format_translation_table
        return format_translation_table(row)


def mean_l1(x, y):
    return float(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)).mean())


CYCLEGAN = Recipe(
    "cyclegan", "CycleGAN (Zhu et al. 2017): unpaired A <-> B translation, LSGAN + cycle L1, ResNet G, PatchGAN D",
    {"dataset_a": "emoji-google", "dataset_b": "emoji-twitter", "batch_size": 16, "lr": 2e-4, "beta1": 0.5,
     "ngf": 32, "ndf": 32, "n_blocks": 1, "decoder": "transposed", "lambda_cycle": 10.0, "lambda_identity": 0.0,
     "pool_size": 50, "decay_epochs": None, "seed": 0, "epochs": 100},
    build_cyclegan, image_sizes=IMAGE_SIZES, checks=CYCLEGAN_CHECKS, family=CycleGANRun)
