"""Samples from a trained generator, rebuilt from a checkpoint alone."""
import numpy as np

from .. import backend
from .checkpoint import Checkpoint, CheckpointError
from .recipes import get_recipe


def load_generator(path, device="cpu", resolution=None):
    """(G in eval mode, Setup) from a checkpoint written by ``scratchgan train``. A family whose generator
    has stages (progan: ``set_sampling_stage``) is set to the stage it trained at, or to ``resolution``."""
    checkpoint = Checkpoint(path)
    setup = rebuild_setup(checkpoint)
    checkpoint.load_generator(setup.G)
    set_stage = getattr(get_recipe(checkpoint.meta["recipe"]).family, "set_sampling_stage", None)
    if set_stage is not None:
        set_stage(setup.G, checkpoint, resolution)
    elif resolution is not None:
        raise ValueError(f"--resolution applies to progan checkpoints only; {path} is a "
                         f"{checkpoint.meta['recipe']!r} run")
    setup.G.to(device).eval()
    return setup.G, setup


def rebuild_setup(checkpoint):
    """A fresh Setup of the checkpoint's recipe and options; CheckpointError if they make no sense."""
    meta = checkpoint.meta
    try:
        recipe = get_recipe(meta["recipe"])
        return recipe.setup(recipe.options(**meta["options"]), tuple(meta["image_shape"]))
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"checkpoint {checkpoint.path} cannot be rebuilt: {e}") from None


def sample_from_checkpoint(path, n, device="cpu", seed=0, batch_size=500, resolution=None):
    """``n`` samples as float32 (n, C, H, W) NumPy images in [0, 1], from noise seeded by ``seed``
    (progan: at the stage it trained at, or at an earlier ``resolution`` it has reached).

    Raises ValueError unless n >= 1, and CheckpointError if the generator's output is not
    finite (a checkpoint holding diverged weights), so no NaN image is ever returned.
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"the number of samples must be a positive integer, got {n!r}")
    G, setup = load_generator(path, device, resolution)
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
