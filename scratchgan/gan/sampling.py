"""Samples from a trained generator, rebuilt from a checkpoint alone."""
import numpy as np

from .. import backend
from .averaging import find_average
from .checkpoint import Checkpoint, CheckpointError
from .recipes import get_recipe


GENERATORS = ("auto", "average", "raw")


def load_generator(path, device="cpu", generator="auto"):
    """(G in eval mode, Setup) from a checkpoint written by ``scratchgan train``.

    ``generator``: "raw" (the trained G), "average" (the average of G's weights kept by a run with
    ``--ema``, gan/averaging.py; an error for a run without one) or "auto" (the average if the run
    kept one, else G: what the run itself samples from).
    """
    if generator not in GENERATORS:
        raise ValueError(f"generator must be one of {', '.join(GENERATORS)}, got {generator!r}")
    checkpoint = Checkpoint(path)
    setup = rebuild_setup(checkpoint)
    checkpoint.load_generator(setup.G)
    setup.G.to(device).eval()
    average = find_average(setup.extensions)
    if generator == "average" and average is None:
        raise CheckpointError(f"{path} is a run without a weight average (--ema): sample its generator "
                              f"with --generator raw (or auto)")
    if generator == "raw" or average is None:
        return setup.G, setup
    state = checkpoint.part(f"ext/{type(average).__name__}/")
    try:
        average.load_state_dict(state)
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"checkpoint {path}: cannot load its averaged generator ({e})") from None
    return average.averaged_generator(setup.G), setup


def rebuild_setup(checkpoint):
    """A fresh Setup of the checkpoint's recipe and options; CheckpointError if they make no sense."""
    meta = checkpoint.meta
    try:
        recipe = get_recipe(meta["recipe"])
        return recipe.setup(recipe.options(**meta["options"]), tuple(meta["image_shape"]))
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"checkpoint {checkpoint.path} cannot be rebuilt: {e}") from None


def sample_from_checkpoint(path, n, device="cpu", seed=0, batch_size=500, generator="auto"):
    """``n`` samples as float32 (n, C, H, W) NumPy images in [0, 1], from noise seeded by ``seed``,
    drawn from the checkpoint's ``generator`` (load_generator: by default the run's weight average if it kept one).

    Raises ValueError unless n >= 1, and CheckpointError if the generator's output is not
    finite (a checkpoint holding diverged weights), so no NaN image is ever returned.
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"the number of samples must be a positive integer, got {n!r}")
    G, setup = load_generator(path, device, generator)
    rng = backend.RNG(seed)
    xp = backend.xp_for(device)
    config = setup.config
    out = []
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        z = rng.normal((m, config.z_dim, *config.noise_shape), dtype=np.float32, xp=xp)
        out.append(backend.asnumpy(setup.to_unit(G.forward(z, train=False, keep_cache=False))))
    samples = np.concatenate(out).astype(np.float32)
    if not np.isfinite(samples).all():
        bad = int((~np.isfinite(samples)).reshape(n, -1).any(axis=1).sum())
        raise CheckpointError(f"the generator in {path} outputs NaN or infinite values ({bad} of {n} samples): "
                              f"its weights diverged; sample an earlier checkpoint or retrain")
    return samples
