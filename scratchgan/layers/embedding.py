"""Class labels as inputs: one-hot codes, learned embeddings, and the projection discriminator's head.

Labels are integer arrays (N,) with values in 0 .. num_classes - 1. They have no gradient: a
layer that reads labels returns None as their input gradient. The range is checked on NumPy
arrays; on the GPU the check would wait for the device at every call, so there the labels are
checked where they enter (the training data once, ``scratchgan sample``'s --label, evaluate's --labels).

- ``OneHot(K)``: y -> e_y, the K-vector with a 1 at position y; ``OneHot(K, spatial=(H, W))``
  broadcasts it to K constant planes (N, K, H, W), label maps to join an image's channels;
- ``Embedding(K, D)``: y -> W[y], row y of a learned (K, D) table (PyTorch's nn.Embedding);
- ``Projection(F, K)``: (h, y) -> h . w + b + h . V[y], the projection discriminator's output
  (Miyato & Koyama 2018).

Embedding and Projection add the gradient of each sample into the row of its label. Rows used by
several samples of a batch must get the *sum* of their gradients; ``V[y] += g`` with repeated
labels keeps only one of them (fancy-index assignment is not accumulation). So the scatter-add
is written as a matrix product with the one-hot matrix, onehot(y)^T g, which sums duplicates by
construction, runs as one BLAS call and needs no scatter-add (which NumPy and CuPy spell differently).
"""
import numpy as np

from .. import backend
from ..fastpath import matmul
from .base import Layer, as_count


def one_hot(labels, num_classes, dtype):
    """(N,) integer labels -> (N, num_classes) array of ``dtype``: row n is e_{labels[n]}."""
    xp = backend.get_xp(labels)
    return (labels[:, None] == xp.arange(num_classes)[None, :]).astype(dtype)


def check_labels(layer, y, num_classes, ref=None):
    """TypeError/ValueError naming ``layer`` unless ``y`` is an (N,) integer array of labels in
    0 .. num_classes - 1 (the range checked on NumPy arrays only), on ``ref``'s device if given."""
    if not hasattr(y, "shape") or not hasattr(y, "dtype"):
        raise TypeError(f"{layer}: expected an array of class labels, got {type(y).__name__}")
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise TypeError(f"{layer}: expected integer class labels of shape (N,), got {y.dtype} {tuple(y.shape)}")
    if ref is not None and backend.get_xp(y) is not backend.get_xp(ref):
        raise ValueError(f"{layer}: labels are on {backend.device_of(y)} but the parameters are on "
                         f"{backend.device_of(ref)}; move one with .to(...)")
    if backend.get_xp(y) is np and len(y) and (y.min() < 0 or y.max() >= num_classes):
        bad = y[(y < 0) | (y >= num_classes)][0]
        raise ValueError(f"{layer}: label {bad} is outside the {num_classes} classes 0..{num_classes - 1}")


def scatter_rows(labels, grad, num_classes):
    """sum_{n: labels[n] = k} grad[n] for every class k, as (num_classes, D): onehot(labels)^T grad.

    Repeated labels add up (each sample is its own term of the sum)."""
    return matmul(one_hot(labels, num_classes, grad.dtype).T, grad)


class OneHot(Layer):
    """y -> e_y: out[n, k] = [y_n = k]. With ``spatial=(H, W)``, out[n, k, i, j] = [y_n = k]:
    K constant planes to concatenate with an image's channels (a conditional DCGAN's D).

    No parameters and no gradient (labels are integers): backward returns None. The output's
    float dtype is the default dtype at construction, changed by ``.to(dtype=...)``.
    """

    def __init__(self, num_classes, spatial=None):
        super().__init__()
        self.num_classes = as_count(num_classes, "num_classes", "OneHot")
        if spatial is not None:
            if len(tuple(spatial)) != 2:
                raise ValueError(f"OneHot: spatial must be (H, W), got {spatial!r}")
            spatial = tuple(as_count(s, "spatial size", "OneHot") for s in spatial)
        self.spatial = spatial
        self.output_dtype = np.dtype(backend.default_dtype())

    def _check_input(self, y):
        check_labels(self, y, self.num_classes)

    def _forward(self, y, train):
        codes = one_hot(y, self.num_classes, self.output_dtype)
        if self.spatial is None:
            return codes, None
        xp = backend.get_xp(y)
        planes = xp.empty((len(y), self.num_classes, *self.spatial), dtype=self.output_dtype)
        planes[...] = codes[:, :, None, None]
        return planes, None

    def _backward(self, dy, cache):
        return None

    def __repr__(self):
        where = "" if self.spatial is None else f", spatial={self.spatial}"
        return f"OneHot({self.num_classes}{where})"


def standard_normal(shape, fan_in, fan_out, rng):
    """N(0, 1): PyTorch's initialization of nn.Embedding."""
    return rng.host.standard_normal(size=shape)


class Embedding(Layer):
    """y -> W[y]: out[n] = W[y_n], a learned D-vector per class; W (num_classes, dim) as PyTorch's
    nn.Embedding (initialized N(0, 1) like it).

    W[y_n] = e_{y_n}^T W, a Dense layer without bias applied to the one-hot code, so
    d out[n, d] / d W[k, d'] = [y_n = k][d = d'] and

        dW[k] = sum_{n: y_n = k} dy[n]        dW = onehot(y)^T dy      (num_classes, dim)

    (every sample adds into its own class's row; repeated labels add up). No input gradient.
    """

    def __init__(self, num_classes, dim, init=standard_normal, rng=None):
        super().__init__()
        self.num_classes = as_count(num_classes, "num_classes", "Embedding")
        self.dim = as_count(dim, "dim", "Embedding")
        self.add_param("weight", (self.num_classes, self.dim), init, self.num_classes, self.dim, rng)

    def _check_input(self, y):
        check_labels(self, y, self.num_classes, self.params["weight"])

    def _forward(self, y, train):
        return self.params["weight"][y], y

    def _backward(self, dy, y):
        if self.requires_grad:
            self.grads["weight"] += scatter_rows(y, dy, self.num_classes)
        return None

    def __repr__(self):
        return f"Embedding({self.num_classes}, {self.dim})"


class Projection(Layer):
    """The projection discriminator's output (Miyato & Koyama 2018): for features h (N, F) and labels y,

        out[n] = h_n . w + b + h_n . V[y_n]                                  (N, 1)

    w (1, F) and b (1,) are the unconditional linear output (``weight``, ``bias``), V (K, F) the
    class embedding (``class_weight``): the label enters as an inner product with the features
    instead of as an input. With g_n = dy[n, 0]:

        dh[n] = g_n (w + V[y_n])
        dw    = sum_n g_n h_n  = g^T h,      db = sum_n g_n
        dV[k] = sum_{n: y_n = k} g_n h_n     = onehot(y)^T (g * h)    (repeated labels add up)

    Labels get no gradient: backward returns (dh, None).
    """

    def __init__(self, in_features, num_classes, bias=True, init="normal_0.02", class_init="normal_0.02",
                 rng=None):
        super().__init__()
        self.in_features = as_count(in_features, "in_features", "Projection")
        self.num_classes = as_count(num_classes, "num_classes", "Projection")
        self.add_param("weight", (1, self.in_features), init, self.in_features, 1, rng)
        if bias:
            self.add_param("bias", (1,), "zeros", self.in_features, 1, rng)
        self.add_param("class_weight", (self.num_classes, self.in_features), class_init, self.num_classes,
                       self.in_features, rng)

    def _check_input(self, x):
        if not isinstance(x, tuple) or len(x) != 2:
            raise TypeError(f"{self}: expected a tuple (features (N, {self.in_features}), labels (N,)), "
                            f"got {type(x).__name__}")
        h, y = x
        if not hasattr(h, "shape") or h.ndim != 2 or h.shape[1] != self.in_features:
            raise ValueError(f"{self}: expected features of shape (N, {self.in_features}), "
                             f"got {tuple(getattr(h, 'shape', ()))}")
        self._check_dtype(h, "features")
        check_labels(self, y, self.num_classes, self.params["weight"])
        if len(y) != len(h):
            raise ValueError(f"{self}: {len(h)} feature rows but {len(y)} labels")

    def _forward(self, x, train):
        h, y = x
        class_rows = self.params["class_weight"][y]               # V[y_n], (N, F)
        out = matmul(h, self.params["weight"].T)                  # h . w, (N, 1)
        out += (h * class_rows).sum(axis=1, keepdims=True)        # + h . V[y]
        if "bias" in self.params:
            out += self.params["bias"]
        return out, (h, y, class_rows)

    def _backward(self, dy, cache):
        h, y, class_rows = cache
        self._param_backward(dy, cache)
        return dy * (self.params["weight"] + class_rows), None   # dh = g (w + V[y])

    def _param_backward(self, dy, cache):
        if not self.requires_grad:
            return
        h, y, _ = cache
        self.grads["weight"] += matmul(dy.T, h)
        if "bias" in self.params:
            self.grads["bias"] += dy.sum(axis=0)
        self.grads["class_weight"] += scatter_rows(y, dy * h, self.num_classes)

    def __repr__(self):
        return f"Projection({self.in_features}, {self.num_classes})"
