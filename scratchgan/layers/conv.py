"""2-D convolution and transposed convolution, NCHW, through im2col / col2im.

im2col turns every kh x kw window of the (padded) input into a column, so a
convolution becomes one matrix product. col2im is its adjoint: it adds each
column back onto the window it came from, summing where windows overlap.
Both are written with strided views and one strided ``+=`` per kernel
position, so they run unchanged on NumPy and CuPy.
"""
from .. import backend
from .base import Layer, as_pair


def conv_output_size(size, kernel, stride, padding):
    """Conv2d: floor((size + 2p - k) / s) + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def conv_transpose_output_size(size, kernel, stride, padding, output_padding=0):
    """ConvTranspose2d: (size - 1) s - 2p + k + output_padding."""
    return (size - 1) * stride - 2 * padding + kernel + output_padding


def pad2d(x, ph, pw):
    """Zero-pad the last two axes by (ph, pw) on each side."""
    if ph == pw == 0:
        return x
    return backend.get_xp(x).pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


def crop2d(x, ph, pw):
    """Undo pad2d (explicit end indices: x[p:-p] would be empty for p == 0)."""
    return x[:, :, ph:x.shape[2] - ph, pw:x.shape[3] - pw]


def im2col(x, kernel, stride, out_size):
    """Windows of x (N, C, H, W) as columns: shape (C*kh*kw, N*Ho*Wo).

    Row (c, i, j), column (n, h, w) holds x[n, c, h*sh + i, w*sw + j].
    """
    (kh, kw), (sh, sw), (ho, wo) = kernel, stride, out_size
    n, c = x.shape[:2]
    s_n, s_c, s_h, s_w = x.strides
    windows = backend.get_xp(x).lib.stride_tricks.as_strided(
        x, shape=(c, kh, kw, n, ho, wo), strides=(s_c, s_h, s_w, s_n, s_h * sh, s_w * sw))
    return windows.reshape(c * kh * kw, n * ho * wo)  # copies: the view is not contiguous


def col2im(cols, x_shape, kernel, stride, out_size):
    """Adjoint of im2col: add each column back onto its window of a zero (N, C, H, W) array."""
    (kh, kw), (sh, sw), (ho, wo) = kernel, stride, out_size
    n, c, h, w = x_shape
    cols = cols.reshape(c, kh, kw, n, ho, wo)
    x = backend.get_xp(cols).zeros((c, n, h, w), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            x[:, :, i:i + sh * ho:sh, j:j + sw * wo:sw] += cols[:, i, j]
    return x.transpose(1, 0, 2, 3)


class Conv2d(Layer):
    """Cross-correlation y[n, o] = b[o] + sum_c W[o, c] * x[n, c] (PyTorch's Conv2d), weight (out, in, kh, kw).

    With X = im2col(pad(x)) of shape (C*kh*kw, N*Ho*Wo) and W as an (O, C*kh*kw) matrix,
    the forward pass is the matrix product Y = W X. Its backward, with dY the
    upstream gradient as an (O, N*Ho*Wo) matrix:

        dW = dY X^T                        (O, C*kh*kw)
        db = sum over n, h, w of dy        (O,)
        dX = W^T dY,  dx = crop(col2im(dX))   (windows overlapping a pixel add up)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True,
                 init="glorot_uniform", rng=None):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = as_pair(kernel_size, "kernel_size")
        self.stride, self.padding = as_pair(stride, "stride"), as_pair(padding, "padding")
        kh, kw = self.kernel_size
        self.input_pattern = (None, in_channels, None, None)
        self.add_param("weight", (out_channels, in_channels, kh, kw), init,
                       in_channels * kh * kw, out_channels * kh * kw, rng)
        if bias:
            self.add_param("bias", (out_channels,), "zeros", 0, 0, rng)

    def output_shape(self, input_shape):
        n, _, h, w = input_shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return (n, self.out_channels, conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw))

    def _forward(self, x, train):
        out_shape = self.output_shape(x.shape)
        if min(out_shape[2:]) < 1:
            raise ValueError(f"{self}: input {tuple(x.shape)} is smaller than the (padded) kernel")
        x_padded = pad2d(x, *self.padding)
        cols = im2col(x_padded, self.kernel_size, self.stride, out_shape[2:])
        weight = self.params["weight"].reshape(self.out_channels, -1)
        y = (weight @ cols).reshape(self.out_channels, x.shape[0], *out_shape[2:]).transpose(1, 0, 2, 3)
        if "bias" in self.params:
            y = y + self.params["bias"].reshape(1, -1, 1, 1)
        return y, (cols, x_padded.shape)

    def _backward(self, dy, cache):
        cols, padded_shape = cache
        dy_mat = dy.transpose(1, 0, 2, 3).reshape(self.out_channels, -1)
        weight = self.params["weight"].reshape(self.out_channels, -1)
        if self.requires_grad:
            self.grads["weight"] += (dy_mat @ cols.T).reshape(self.grads["weight"].shape)
            if "bias" in self.params:
                self.grads["bias"] += dy.sum(axis=(0, 2, 3))
        dx = col2im(weight.T @ dy_mat, padded_shape, self.kernel_size, self.stride, dy.shape[2:])
        return crop2d(dx, *self.padding)

    def __repr__(self):
        return (f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={'bias' in self.params})")


class ConvTranspose2d(Layer):
    """Transposed convolution (PyTorch's ConvTranspose2d), weight (in, out, kh, kw).

    Its forward pass is Conv2d's input-gradient pass: with x as a (C_in, N*H*W)
    matrix X and W as a (C_in, C_out*kh*kw) matrix,

        Y_cols = W^T X,  y = crop(col2im(Y_cols)) + b,  Ho = (H - 1) s - 2p + k + output_padding

    so the backward is Conv2d's forward pass on the upstream gradient: with
    dY = im2col(pad(dy)) of shape (C_out*kh*kw, N*H*W),

        dW = X dY^T      (C_in, C_out*kh*kw)
        db = sum over n, h, w of dy
        dX = W dY        (C_in, N*H*W)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                 bias=True, init="glorot_uniform", rng=None):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = as_pair(kernel_size, "kernel_size")
        self.stride, self.padding = as_pair(stride, "stride"), as_pair(padding, "padding")
        self.output_padding = as_pair(output_padding, "output_padding")
        if any(op >= s for op, s in zip(self.output_padding, self.stride)):
            raise ValueError(f"ConvTranspose2d: output_padding {self.output_padding} must be smaller "
                             f"than stride {self.stride}")
        kh, kw = self.kernel_size
        self.input_pattern = (None, in_channels, None, None)
        self.add_param("weight", (in_channels, out_channels, kh, kw), init,
                       out_channels * kh * kw, in_channels * kh * kw, rng)
        if bias:
            self.add_param("bias", (out_channels,), "zeros", 0, 0, rng)

    def output_shape(self, input_shape):
        n, _, h, w = input_shape
        sizes = [conv_transpose_output_size(size, k, s, p, op) for size, k, s, p, op in
                 zip((h, w), self.kernel_size, self.stride, self.padding, self.output_padding)]
        return (n, self.out_channels, *sizes)

    def _forward(self, x, train):
        n, c, h, w = x.shape
        out_shape = self.output_shape(x.shape)
        if min(out_shape[2:]) < 1:
            raise ValueError(f"{self}: padding {self.padding} leaves no output for input {tuple(x.shape)}")
        (ph, pw) = self.padding
        full_shape = (n, self.out_channels, out_shape[2] + 2 * ph, out_shape[3] + 2 * pw)
        x_mat = x.transpose(1, 0, 2, 3).reshape(c, -1)
        weight = self.params["weight"].reshape(c, -1)
        y = crop2d(col2im(weight.T @ x_mat, full_shape, self.kernel_size, self.stride, (h, w)), ph, pw)
        if "bias" in self.params:
            y = y + self.params["bias"].reshape(1, -1, 1, 1)
        return y, (x_mat, (h, w))

    def _backward(self, dy, cache):
        x_mat, in_size = cache
        dy_cols = im2col(pad2d(dy, *self.padding), self.kernel_size, self.stride, in_size)
        weight = self.params["weight"].reshape(self.in_channels, -1)
        if self.requires_grad:
            self.grads["weight"] += (x_mat @ dy_cols.T).reshape(self.grads["weight"].shape)
            if "bias" in self.params:
                self.grads["bias"] += dy.sum(axis=(0, 2, 3))
        dx = (weight @ dy_cols).reshape(self.in_channels, dy.shape[0], *in_size)
        return dx.transpose(1, 0, 2, 3)

    def __repr__(self):
        return (f"ConvTranspose2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, output_padding={self.output_padding}, "
                f"bias={'bias' in self.params})")
