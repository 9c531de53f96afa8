"""Average pooling: AvgPool2d, the downsampling of LAPGAN's pyramid and of ProGAN's critic."""
from .. import backend
from .base import Layer, as_pair
from .conv import _windows_inside, conv_output_size


class AvgPool2d(Layer):
    """The mean of each kh x kw window (PyTorch's AvgPool2d, zero padding counted in the mean):

        y[n, c, h, w] = 1/(kh kw) sum_{i<kh, j<kw} xp[n, c, h sh + i, w sw + j]

    with xp the input zero-padded by (ph, pw); Ho = floor((H + 2 ph - kh) / sh) + 1, likewise Wo.
    ``stride`` defaults to the kernel size: AvgPool2d(2) halves an image, each output pixel the
    mean of a 2 x 2 block.

    Backward: y is linear in x and every input pixel of window (h, w) has weight 1/(kh kw), so

        dx[n, c, h sh + i - ph, w sw + j - pw] += dy[n, c, h, w] / (kh kw)   for each (i, j)

    (what falls into the padding is dropped). Double backward: the backward is linear in dy and
    does not depend on x, so for a cotangent u of dx, ddy = AvgPool2d(u) and no x-cotangent.

    Fast path: for non-overlapping windows without padding (stride == kernel, the downsampling
    case) the forward is a reshape and a mean, the backward a broadcast; otherwise one strided
    sum (or ``+=``) per kernel position, as im2col does (layers/conv.py).
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = as_pair(kernel_size, "kernel_size", "AvgPool2d", least=1)
        self.stride = self.kernel_size if stride is None else as_pair(stride, "stride", "AvgPool2d", least=1)
        self.padding = as_pair(padding, "padding", "AvgPool2d", least=0)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(f"AvgPool2d: padding {self.padding} must be at most half the kernel size "
                             f"{self.kernel_size}")
        self.input_pattern = (None, None, None, None)

    def output_shape(self, input_shape):
        n, c, h, w = input_shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return (n, c, conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw))

    def _blocks(self):
        """True when the windows tile the image without overlap or padding (stride == kernel, no padding)."""
        return self.stride == self.kernel_size and self.padding == (0, 0)

    def _forward(self, x, train):
        out_shape = self.output_shape(x.shape)
        if min(out_shape[2:]) < 1:
            raise ValueError(f"{self}: input {tuple(x.shape)} is smaller than the (padded) kernel")
        return self._pool(x, out_shape), tuple(x.shape)

    def _pool(self, x, out_shape):
        n, c, ho, wo = out_shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        weight = x.dtype.type(1 / (kh * kw))
        if self._blocks():
            blocks = x[:, :, :ho * kh, :wo * kw].reshape(n, c, ho, kh, wo, kw)
            return blocks.sum(axis=(3, 5)) * weight
        y = backend.get_xp(x).zeros(out_shape, dtype=x.dtype)
        for i in range(kh):
            rows = _windows_inside(i, sh, ph, x.shape[2], ho)
            for j in range(kw):
                columns = _windows_inside(j, sw, pw, x.shape[3], wo)
                if rows is not None and columns is not None:
                    (win_h, pix_h), (win_w, pix_w) = rows, columns
                    y[:, :, win_h, win_w] += x[:, :, pix_h, pix_w]
        y *= weight
        return y

    def _backward(self, dy, x_shape):
        n, c, ho, wo = dy.shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        share = dy * dy.dtype.type(1 / (kh * kw))
        xp = backend.get_xp(dy)
        dx = xp.zeros(x_shape, dtype=dy.dtype)
        if self._blocks():   # each pixel of a block gets its block's share (rows/columns past the last block: 0)
            blocks = xp.broadcast_to(share[:, :, :, None, :, None], (n, c, ho, kh, wo, kw))
            dx[:, :, :ho * kh, :wo * kw] = blocks.reshape(n, c, ho * kh, wo * kw)
            return dx
        for i in range(kh):
            rows = _windows_inside(i, sh, ph, x_shape[2], ho)
            for j in range(kw):
                columns = _windows_inside(j, sw, pw, x_shape[3], wo)
                if rows is not None and columns is not None:
                    (win_h, pix_h), (win_w, pix_w) = rows, columns
                    dx[:, :, pix_h, pix_w] += share[:, :, win_h, win_w]
        return dx

    def _double_backward(self, ddx, x_shape, dy):
        """Linear with a constant Jacobian: ddy = the pooling of ddx; no x-cotangent."""
        return self._pool(ddx, dy.shape), None

    def __repr__(self):
        return f"AvgPool2d(kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding})"
