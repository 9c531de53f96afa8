"""Differentiable augmentation (Zhao et al. 2020, "DiffAugment"): random translation and cutout of D's input."""
import numpy as np

from .. import backend
from .base import Layer, resolve_keep_cache

POLICIES = ("translation", "cutout")


class DiffAugment(Layer):
    """y = T(x): each sample randomly shifted and/or partly blanked in training; y = x in eval mode.

    Placed in front of a discriminator, it shows D augmented real *and* fake images, and G's
    gradient flows back through the same transformation of its fakes (the backward below), so
    G is never asked to produce augmented images (Zhao et al. 2020). No parameters.

    For sample n, with ``fill`` the value of pixels that come from outside the image or are cut out:

    - translation by (a_n, b_n), integers drawn uniformly from [-s, s], s = round(ratio * size / 2):
          y[n, c, i, j] = x[n, c, i - a_n, j - b_n]   if that pixel exists, else fill
    - cutout of a square of side k = round(ratio * size) centred at a uniform position (clipped
      at the border): y = m_n * x + (1 - m_n) * fill, m_n the 0/1 mask (0 in the square).

    Both are affine in x with a linear part L that does not depend on x, so the backward is
    its transpose: the translation's is the shift by (-a_n, -b_n) with zeros coming in (each
    output pixel came from at most one input pixel), the cutout's is dx = m_n * dy; applied
    in reverse order. The double backward is L itself on the cotangent (ddy = L ddx), no
    x-cotangent: D under a gradient penalty may start with it.

    Random draws: sample n's shift and square come from ``numpy.random.default_rng([seed, step])``
    with ``step`` a buffer counting the training passes, so a checkpoint (which saves buffers)
    resumes the same augmentations; ``draws(shape)`` gives the next pass's draws.
    """

    def __init__(self, policy=("translation", "cutout"), translation=0.125, cutout=0.5, fill=0.0, seed=0):
        super().__init__()
        policy = tuple(p.strip() for p in policy.split(",")) if isinstance(policy, str) else tuple(policy)
        unknown = [p for p in policy if p not in POLICIES]
        if unknown or not policy:
            raise ValueError(f"DiffAugment: policy must name one or more of {', '.join(POLICIES)}, got {policy!r}")
        for name, ratio in (("translation", translation), ("cutout", cutout)):
            if not 0 < ratio <= 1:
                raise ValueError(f"DiffAugment: {name} ratio must be in (0, 1], got {ratio!r}")
        self.policy, self.translation, self.cutout, self.fill, self.seed = policy, translation, cutout, fill, seed
        self.buffers["step"] = np.zeros((), dtype=np.int64)

    def draws(self, shape, step=None):
        """The random draws of training pass ``step`` (default: the next) for inputs of ``shape`` (N, C, H, W):
        {"shift": (N, 2) integer shifts or None, "mask": (N, 1, H, W) 0/1 float64 mask or None}."""
        n, _, h, w = shape
        rng = np.random.default_rng([self.seed, int(self.buffers["step"] if step is None else step)])
        shift = mask = None
        if "translation" in self.policy:
            reach = np.array([int(self.translation * h / 2 + 0.5), int(self.translation * w / 2 + 0.5)])
            shift = rng.integers(-reach, reach + 1, size=(n, 2))
        if "cutout" in self.policy:
            side = np.array([int(self.cutout * h + 0.5), int(self.cutout * w + 0.5)])
            centre = rng.integers(0, np.array([h, w]) + (1 - side % 2), size=(n, 2))
            start = centre - side // 2
            rows, cols = np.arange(h), np.arange(w)
            inside_rows = (rows >= start[:, :1]) & (rows < start[:, :1] + side[0])          # (N, H)
            inside_cols = (cols >= start[:, 1:]) & (cols < start[:, 1:] + side[1])          # (N, W)
            mask = 1.0 - (inside_rows[:, :, None] & inside_cols[:, None, :])[:, None].astype(np.float64)
        return {"shift": shift, "mask": mask}

    def forward(self, x, train=None, keep_cache=None, *, grad=None):
        train = self.training if train is None else train
        keep_cache = resolve_keep_cache(keep_cache, grad, train)
        if x.ndim != 4:
            raise ValueError(f"{self}: expected input of shape (N, C, H, W), got {tuple(x.shape)}")
        self._check_dtype(x, "input")
        if keep_cache and self._cache is not None:
            raise RuntimeError(f"{self}: forward called again before backward of the previous call")
        draws = None
        if train:
            draws = self._on_device(self.draws(x.shape), x)
            self.buffers["step"] += 1
            x = self._apply(x, draws, self.fill)
        if keep_cache:
            self._cache = (draws, tuple(x.shape))
        return x

    __call__ = forward

    def _apply(self, x, draws, fill):
        """Translation, then cutout, with ``fill`` for pixels from outside or cut out (0: the linear part)."""
        if draws["shift"] is not None:
            x = translate(x, draws["shift"], fill)
        if draws["mask"] is not None:
            mask = draws["mask"]
            x = x * mask if fill == 0 else x * mask + x.dtype.type(fill) * (1 - mask)
        return x

    def backward(self, dy, input_grad=True, keep_cache=False):
        """dx = L^T dy: the cutout's mask, then the translation back (zeros coming in)."""
        if self._cache is None:
            raise RuntimeError(f"{self}: backward called without a forward pass that kept its cache")
        draws, shape = self._cache
        if tuple(dy.shape) != shape:
            raise ValueError(f"{self}: upstream gradient has shape {tuple(dy.shape)} but the output had shape {shape}")
        self._double_cache = (dy, shape) if keep_cache else None
        if not keep_cache:
            self._cache = None
        if not input_grad:
            return None
        if draws is None:
            return dy
        if draws["mask"] is not None:
            dy = dy * draws["mask"]
        if draws["shift"] is not None:
            dy = translate(dy, -draws["shift"], 0.0)
        return dy

    def _double_backward(self, ddx, draws, dy):
        return (ddx if draws is None else self._apply(ddx, draws, 0.0)), None

    @staticmethod
    def _on_device(draws, x):
        xp = backend.get_xp(x)
        mask = draws["mask"]
        return {"shift": draws["shift"], "mask": None if mask is None else xp.asarray(mask, dtype=x.dtype)}

    def __repr__(self):
        return (f"DiffAugment(policy={','.join(self.policy)!r}, translation={self.translation}, "
                f"cutout={self.cutout}, fill={self.fill})")


def translate(x, shift, fill):
    """y[n, c, i, j] = x[n, c, i - shift[n, 0], j - shift[n, 1]] where that pixel exists, else ``fill``.

    One gather for the whole batch: x padded by the largest shift on every side, then each
    sample's window read through (N, H) row and (N, W) column indices.
    """
    xp = backend.get_xp(x)
    n, c, h, w = x.shape
    pad = int(np.abs(shift).max()) if len(shift) else 0
    if pad == 0:
        return x.copy()
    padded = xp.full((n, c, h + 2 * pad, w + 2 * pad), fill, dtype=x.dtype)
    padded[:, :, pad:pad + h, pad:pad + w] = x
    rows = xp.asarray(np.arange(h)[None, :] - shift[:, :1] + pad)            # (N, H)
    cols = xp.asarray(np.arange(w)[None, :] - shift[:, 1:] + pad)            # (N, W)
    batch = xp.arange(n)[:, None, None]
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]              # (N, H, W, C)
    return xp.ascontiguousarray(out.transpose(0, 3, 1, 2))
