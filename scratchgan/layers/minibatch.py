"""Minibatch discrimination (Salimans et al. 2016): features that let D compare the samples of a batch."""
from .. import backend
from ..fastpath import add_matmul_to_grad, matmul_tall
from .base import Layer, as_count

#: rows of the batch handled at once: the (rows, N, B) temporaries stay a few MB
ROW_BLOCK = 64


def _row_blocks(n):
    return [slice(start, start + ROW_BLOCK) for start in range(0, n, ROW_BLOCK)]


def normal_005(shape, fan_in, fan_out, rng):
    """N(0, 0.05^2), the initialization of the authors' code."""
    return rng.host.normal(0.0, 0.05, size=shape)


class MinibatchDiscrimination(Layer):
    """y = [x, o(x)]: the input with B "closeness" features appended, (N, A) -> (N, A + B).

    Each sample's row x_i (A features) is projected to B kernels of C numbers each,
    M_i = (x_i W^T).reshape(B, C) with ``weight`` W of shape (B C, A). Kernel b compares
    sample i with every other sample j of the batch by the L1 distance of their projections:

        d_ijb = sum_c |M_ibc - M_jbc|,   c_ijb = exp(-d_ijb),   o_ib = sum_{j != i} c_ijb

    (The paper writes the sum over all j; the self term is exp(0) = 1 for every sample, a
    constant, and the authors' code leaves it out, as here. A batch of one gets o = 0.)
    A collapsed generator's samples are close to each other, so their o is large and D can
    tell the whole batch apart from a batch of varied real samples.

    Backward, for the upstream gradient dy = [dy_x, do]: x reaches y directly (dy_x) and
    through M. M_i reaches o_ib through c_ijb (sample i's own feature) *and* o_jb through
    c_jib = c_ijb (every other sample's feature): the cross-sample term. With
    d|M_ibc - M_jbc| / dM_ibc = sign(M_ibc - M_jbc),

        dM_ibc = -sum_{j != i} (do_ib + do_jb) c_ijb sign(M_ibc - M_jbc)

    then dW = dM^T x and dx = dy_x + dM W, as for a Dense layer on the flattened dM (N, B C).
    The L1 distance has a kink where two projections tie in a coordinate; the gradient uses
    sign(0) = 0 there (the diagonal i = j is excluded anyway).
    """

    mixes_batch = True   # each sample's output depends on the others of its batch

    def __init__(self, in_features, num_kernels, kernel_dim, init=normal_005, rng=None):
        super().__init__()
        self.in_features = n_in = as_count(in_features, "in_features", "MinibatchDiscrimination")
        self.num_kernels = as_count(num_kernels, "num_kernels", "MinibatchDiscrimination")
        self.kernel_dim = as_count(kernel_dim, "kernel_dim", "MinibatchDiscrimination")
        self.out_features = n_in + self.num_kernels
        self.input_pattern = (None, n_in)
        self.add_param("weight", (self.num_kernels * self.kernel_dim, n_in), init, n_in,
                       self.num_kernels * self.kernel_dim, rng)

    def _projections(self, x):
        """M = x W^T, laid out kernel-coordinate-major as (C, N, B): each M[c] is an (N, B) matrix."""
        m = matmul_tall(x, self.params["weight"].T).reshape(len(x), self.num_kernels, self.kernel_dim)
        return backend.get_xp(x).ascontiguousarray(m.transpose(2, 0, 1))

    def _forward(self, x, train):
        xp = backend.get_xp(x)
        m = self._projections(x)
        closeness = xp.empty((len(x), len(x), self.num_kernels), dtype=x.dtype)   # c_ijb
        for rows in _row_blocks(len(x)):
            distance = xp.zeros(closeness[rows].shape, dtype=x.dtype)              # d_ijb for a block of i
            for mc in m:                                                           # one coordinate c at a time
                distance += xp.abs(mc[rows, None, :] - mc[None, :, :])
            xp.exp(-distance, out=closeness[rows])
        diagonal = xp.arange(len(x))
        closeness[diagonal, diagonal] = 0                                          # j != i
        o = closeness.sum(axis=1)                                                  # (N, B)
        return xp.concatenate([x, o], axis=1), (x, m, closeness)

    def _backward(self, dy, cache):
        dm = self._grad_m(dy, cache)
        return dy[:, :self.in_features] + matmul_tall(dm, self.params["weight"])   # dx = dy_x + dM W

    def _param_backward(self, dy, cache):
        self._grad_m(dy, cache)

    def _grad_m(self, dy, cache):
        """dM (N, B C) as derived above; adds dW = dM^T x on the way."""
        x, m, closeness = cache
        xp = backend.get_xp(dy)
        do = dy[:, self.in_features:]                                              # (N, B)
        weights = (do[:, None, :] + do[None, :, :]) * closeness                     # (do_ib + do_jb) c_ijb
        dm = xp.empty_like(m)                                                      # (C, N, B)
        for rows in _row_blocks(len(x)):
            for c, mc in enumerate(m):
                signs = xp.sign(mc[rows, None, :] - mc[None, :, :])                # (rows, N, B)
                signs *= weights[rows]
                dm[c, rows] = -signs.sum(axis=1)
        dm = dm.transpose(1, 2, 0).reshape(len(x), -1)                             # (N, B C), B-major as W's rows
        if self.requires_grad:
            add_matmul_to_grad(self.grads["weight"], dm.T, x)
        return dm

    def __repr__(self):
        return (f"MinibatchDiscrimination({self.in_features} => {self.out_features}, "
                f"kernels={self.num_kernels}, kernel_dim={self.kernel_dim})")

