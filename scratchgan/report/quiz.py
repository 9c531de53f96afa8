"""The spot-the-fake quiz: real training images and fresh generator samples, mixed (seeded).

Reals are drawn from the data the run trained on and go through the recipe's own preprocessing
(so a binarized run's reals are binarized, as in training); fakes come from the run's checkpoint
(``scratchgan.gan.sampling``) and are binarized likewise, as ``scratchgan train``'s
spot_the_fake.png does. Anything missing (checkpoint, data) raises ``QuizUnavailable`` with the
reason, and the page says it instead of showing the quiz.
"""
from dataclasses import dataclass

import numpy as np

from .. import backend
from ..data import transforms

FAKE_FRACTION = 1 / 3


class QuizUnavailable(Exception):
    """The quiz cannot be drawn for this run; the message says why."""


@dataclass
class Quiz:
    images: np.ndarray    # (n, C, H, W) float32 in [0, 1]
    is_fake: np.ndarray   # (n,) bool
    seed: int


def draw_quiz(run, tiles, seed=0, data_dir=None, images=None):
    """A Quiz of ``tiles`` images (round(tiles / 3) fake) for ``run`` (a rundir.Run).

    ``images`` (uint8 (N, C, H, W)) are the run's training images when the caller already has
    them (``scratchgan train``); otherwise they are loaded from ``data_dir``, $SCRATCHGAN_DATA
    or the cache, never downloaded.
    """
    from ..gan.checkpoint import Checkpoint, CheckpointError
    from ..gan.recipes import get_recipe
    from ..gan.sampling import sample_from_checkpoint
    from ..plots import spot_the_fake
    if run.checkpoint is None:
        raise QuizUnavailable("the run has no checkpoint.npz to draw fakes from")
    n_fake = round(tiles * FAKE_FRACTION)
    try:
        recipe = get_recipe(run.info["recipe"])
        if not recipe.draws_samples:
            raise QuizUnavailable(f"a {recipe.name} run maps images to images: there are no samples from noise to quiz on")
        options = recipe.options(**run.options)
        setup = recipe.setup(options, tuple(run.info["image_shape"]))
        fakes = sample_from_checkpoint(str(run.checkpoint), n_fake, seed=seed)
    except (CheckpointError, ValueError, KeyError) as e:
        raise QuizUnavailable(f"cannot sample from {run.checkpoint}: {e}") from None
    if options.get("binarize"):
        fakes = transforms.binarize(fakes)
    images = _training_images(run, data_dir) if images is None else images
    if len(images) < tiles - n_fake:
        raise QuizUnavailable(f"the data has {len(images)} images, the quiz needs {tiles - n_fake} real ones")
    rng = np.random.default_rng(seed)
    picked = images[np.sort(rng.choice(len(images), tiles - n_fake, replace=False))]
    reals = setup.preprocess(picked)
    at_stage = getattr(recipe.family, "reals_at_sampling_stage", None)   # progan: a run may stop before its last stage
    if at_stage is not None:
        reals = at_stage(reals, Checkpoint(str(run.checkpoint)))
    reals = backend.asnumpy(setup.to_unit(reals)).astype(np.float32)
    mixed, is_fake = spot_the_fake(reals, fakes, n=tiles, fake_fraction=n_fake / tiles, rng=rng)
    return Quiz(mixed, is_fake, seed)


def _training_images(run, data_dir):
    from ..data import DataError
    from ..data.images import load_images
    dataset = run.info.get("dataset", "custom")
    if dataset == "custom":
        raise QuizUnavailable("the run was trained on images passed in code (dataset 'custom'), "
                              "so the report cannot load its real images")
    channels, size = run.info["image_shape"][0], run.info["image_shape"][1]
    try:
        return load_images(dataset, data_dir=data_dir, image_size=size, channels=channels, download=False,
                           quiet=True)
    except (DataError, OSError, ValueError) as e:
        first_line = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise QuizUnavailable(f"the real images ({dataset}) are not available: {first_line} Pass --data-dir "
                              f"or set SCRATCHGAN_DATA.") from None
