"""Samples from a trained generator, rebuilt from a checkpoint alone."""
import numpy as np

from .. import backend
from .checkpoint import Checkpoint
from .recipes import get_recipe


def load_generator(path, device="cpu"):
    """(G in eval mode, Setup) from a checkpoint written by ``scratchgan train``."""
    checkpoint = Checkpoint(path)
    meta = checkpoint.meta
    recipe = get_recipe(meta["recipe"])
    setup = recipe.setup(recipe.options(**meta["options"]), tuple(meta["image_shape"]))
    checkpoint.load_generator(setup.G)
    setup.G.to(device).eval()
    return setup.G, setup


def sample_from_checkpoint(path, n, device="cpu", seed=0, batch_size=500):
    """``n`` samples as float32 (n, C, H, W) NumPy images in [0, 1], from noise seeded by ``seed``."""
    G, setup = load_generator(path, device)
    rng = backend.RNG(seed)
    xp = backend.xp_for(device)
    config = setup.config
    out = []
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        z = rng.normal((m, config.z_dim, *config.noise_shape), dtype=np.float32, xp=xp)
        out.append(backend.asnumpy(setup.to_unit(G.forward(z, train=False, grad=False))))
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, *setup.image_shape), np.float32)
