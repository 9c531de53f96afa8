"""2-D convolution and transposed convolution, NCHW, through im2col / col2im.

im2col turns every kh x kw window of the (zero-padded) input into a column, so a
convolution becomes one matrix product. col2im is its adjoint: it adds each
column back onto the window it came from, summing where windows overlap.

Memory layout. Arrays are (N, C, H, W) at every layer boundary, as in PyTorch,
but the matrices behind them are channel-major with the batch innermost,
(C, H*W*N) -- cuda-convnet's "CHWN" layout:

- a layer's matrix product *is* its output: W (O, C kh kw) @ cols (C kh kw, Ho Wo N)
  gives (O, Ho Wo N), returned as the (N, O, Ho, Wo) view ``as_nchw`` (no copy), and
  the next layer reads it back as a matrix with ``as_matrix`` (no copy either);
- im2col and col2im copy or add one kernel position at a time through strided
  slices whose innermost axis is the batch, so NumPy moves runs of N contiguous
  floats instead of rows of 7 or 14 pixels (per-row loop overhead dominated before).

Any other input layout (a C-contiguous NCHW batch from a data loader, say) works
unchanged: the strided slices read it as it is, and a reshape that needs a copy makes one.
Everything is plain slicing and ``@``, so it runs unchanged on NumPy and CuPy.
"""
from .. import backend
from .base import Layer, add_matmul, as_pair, matmul_into


def conv_output_size(size, kernel, stride, padding):
    """Conv2d: floor((size + 2p - k) / s) + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def conv_transpose_output_size(size, kernel, stride, padding, output_padding=0):
    """ConvTranspose2d: (size - 1) s - 2p + k + output_padding."""
    return (size - 1) * stride - 2 * padding + kernel + output_padding


def as_matrix(x):
    """(N, C, H, W) -> the (C, H*W*N) matrix; a view when x is a layer output (CHWN memory)."""
    return x.transpose(1, 2, 3, 0).reshape(x.shape[1], -1)


def as_nchw(mat, shape):
    """A (C, H*W*N) matrix as the (N, C, H, W) array ``shape`` (a view, never a copy)."""
    n, c, h, w = shape
    return mat.reshape(c, h, w, n).transpose(3, 0, 1, 2)


def _tap(offset, stride, padding, size, out_size):
    """Window positions o whose pixel o*stride + offset - padding lies inside [0, size).

    Returns (slice of window positions, strided slice of those pixels), or None when
    this kernel offset only ever sees padding.
    """
    first = max(0, -((offset - padding) // stride))     # ceil((padding - offset) / stride), at least 0
    last = min(out_size - 1, (size - 1 + padding - offset) // stride)
    if last < first:
        return None
    start = first * stride + offset - padding
    return slice(first, last + 1), slice(start, start + (last - first) * stride + 1, stride)


def _kernel_taps(kernel, stride, padding, image_size, out_size):
    """(i, j, window slices, pixel slices) for every kernel position that touches the image."""
    taps = []
    for i in range(kernel[0]):
        rows = _tap(i, stride[0], padding[0], image_size[0], out_size[0])
        for j in range(kernel[1]):
            cols = _tap(j, stride[1], padding[1], image_size[1], out_size[1])
            if rows is not None and cols is not None:
                taps.append((i, j, (rows[0], cols[0]), (rows[1], cols[1])))
    return taps


def _single_window(kernel, padding, image_size, out_size):
    """True when the kernel is exactly as large as the unpadded image (DCGAN's 7x7 layers on a
    7x7 map or from 1x1 noise): the one window is the image, the layer a dense one, and
    im2col / col2im are reshapes: row (c, i, j) of the columns is pixel (i, j) of channel c."""
    return tuple(out_size) == (1, 1) and tuple(padding) == (0, 0) and tuple(kernel) == tuple(image_size)


def im2col(x, kernel, stride, out_size, padding=(0, 0), out=None):
    """Windows of x (N, C, H, W), zero-padded by ``padding``, as columns: shape (C*kh*kw, Ho*Wo*N).

    Row (c, i, j), column (h, w, n) holds x[n, c, h*sh + i - ph, w*sw + j - pw], 0 in the padding.
    One strided copy per kernel position (i, j); the padding is never materialized, and only
    the windows that fall into it are zeroed (not the whole array: that pass cost as much as a
    third of the copy). ``out``: a C-contiguous array of that shape to fill instead of a new one.
    """
    (kh, kw), (ho, wo) = kernel, out_size
    n, c, h, w = x.shape
    xp = backend.get_xp(x)
    if _single_window(kernel, padding, (h, w), out_size):
        whole = x.transpose(1, 2, 3, 0).reshape(c * kh * kw, n)    # no copy for a channel-major x
        if out is None:
            return whole
        out[...] = whole
        return out
    cols = xp.empty((c, kh, kw, ho, wo, n), dtype=x.dtype) if out is None else out.reshape(c, kh, kw, ho, wo, n)
    image = x.transpose(1, 2, 3, 0)                     # (C, H, W, N): the batch innermost
    taps = {(i, j): (win, pix) for i, j, win, pix in _kernel_taps(kernel, stride, padding, (h, w), out_size)}
    for i in range(kh):
        for j in range(kw):
            block = cols[:, i, j]                       # (C, Ho, Wo, N)
            if (i, j) not in taps:                      # this kernel position only ever sees padding
                block.fill(0)
                continue
            (wh, ww), (ph, pw) = taps[i, j]
            block[:, wh, ww] = image[:, ph, pw]
            _zero_outside(block, wh, ww)
    return cols.reshape(c * kh * kw, ho * wo * n)


def _zero_outside(block, rows, cols):
    """Zero the (C, Ho, Wo, N) ``block`` outside window rows ``rows`` and columns ``cols``: the
    windows whose pixel for this kernel position lies in the padding."""
    block[:, :rows.start] = 0
    block[:, rows.stop:] = 0
    block[:, rows, :cols.start] = 0
    block[:, rows, cols.stop:] = 0


def col2im(cols, x_shape, kernel, stride, out_size, padding=(0, 0)):
    """Adjoint of im2col: add each column back onto its window of a zero image of shape
    ``x_shape`` (N, C, H, W); what falls into the padding is dropped.

    One strided ``+=`` per kernel position: within one position no two windows share
    a pixel, so every overlap is summed (a fancy-index ``+=`` would drop repeats).
    The result is the (N, C, H, W) view of a (C, H, W, N) array.
    """
    (kh, kw), (ho, wo) = kernel, out_size
    n, c, h, w = x_shape
    if _single_window(kernel, padding, (h, w), out_size):
        return cols.reshape(c, h, w, n).copy().transpose(3, 0, 1, 2)   # a copy: cols may be scratch
    cols = cols.reshape(c, kh, kw, ho, wo, n)
    image = backend.get_xp(cols).zeros((c, h, w, n), dtype=cols.dtype)
    for i, j, (wh, ww), (ph, pw) in _kernel_taps(kernel, stride, padding, (h, w), out_size):
        image[:, ph, pw] += cols[:, i, j, wh, ww]
    return image.transpose(3, 0, 1, 2)


class Conv2d(Layer):
    """Cross-correlation y[n, o] = b[o] + sum_c W[o, c] * x[n, c] (PyTorch's Conv2d), weight (out, in, kh, kw).

    With X = im2col(x) of shape (C*kh*kw, Ho*Wo*N) (zero padding included) and W as an
    (O, C*kh*kw) matrix, the forward pass is the matrix product Y = W X. Its backward,
    with dY the upstream gradient as an (O, Ho*Wo*N) matrix:

        dW = dY X^T                   (O, C*kh*kw)
        db = sum over n, h, w of dy   (O,)
        dX = W^T dY,  dx = col2im(dX)   (windows overlapping a pixel add up; padding dropped)
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
        cols = im2col(x, self.kernel_size, self.stride, out_shape[2:], self.padding)
        y = self.params["weight"].reshape(self.out_channels, -1) @ cols
        if "bias" in self.params:
            y += self.params["bias"].reshape(-1, 1)    # y is ours: add in place, no second array
        return as_nchw(y, out_shape), (cols, x.shape)

    def _backward(self, dy, cache):
        cols, x_shape = cache
        dy_mat = as_matrix(dy)
        self._param_grads(dy_mat, cols)
        weight = self.params["weight"].reshape(self.out_channels, -1)
        dx_cols = matmul_into(weight.T, dy_mat, self._work_array("dx_cols", cols.shape, dy))
        return col2im(dx_cols, x_shape, self.kernel_size, self.stride, dy.shape[2:], self.padding)

    def _param_backward(self, dy, cache):
        self._param_grads(as_matrix(dy), cache[0])

    def _param_grads(self, dy_mat, cols):
        if self.requires_grad:
            add_matmul(self.grads["weight"], dy_mat, cols.T)
            if "bias" in self.params:
                self.grads["bias"] += dy_mat.sum(axis=1)

    def __repr__(self):
        return (f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={'bias' in self.params})")


class ConvTranspose2d(Layer):
    """Transposed convolution (PyTorch's ConvTranspose2d), weight (in, out, kh, kw).

    Its forward pass is Conv2d's input-gradient pass: with x as a (C_in, H*W*N)
    matrix X and W as a (C_in, C_out*kh*kw) matrix,

        Y_cols = W^T X,  y = col2im(Y_cols) + b,  Ho = (H - 1) s - 2p + k + output_padding

    (col2im drops what falls into the padding p), so the backward is Conv2d's forward
    pass on the upstream gradient: with dY = im2col(dy) of shape (C_out*kh*kw, H*W*N),

        dW = X dY^T      (C_in, C_out*kh*kw)
        db = sum over n, h, w of dy
        dX = W dY        (C_in, H*W*N)
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
        x_mat = as_matrix(x)
        weight = self.params["weight"].reshape(c, -1)
        y_cols = matmul_into(weight.T, x_mat, self._work_array("y_cols", (weight.shape[1], x_mat.shape[1]), x))
        y = col2im(y_cols, out_shape, self.kernel_size, self.stride, (h, w), self.padding)
        if "bias" in self.params:
            y += self.params["bias"].reshape(1, -1, 1, 1)   # y is ours: add in place
        return y, (x_mat, (h, w))

    def _backward(self, dy, cache):
        x_mat, in_size = cache
        dy_cols = self._dy_cols(dy, in_size)
        self._param_grads(dy, dy_cols, x_mat)
        weight = self.params["weight"].reshape(self.in_channels, -1)
        return as_nchw(weight @ dy_cols, (dy.shape[0], self.in_channels, *in_size))

    def _param_backward(self, dy, cache):
        if self.requires_grad:
            x_mat, in_size = cache
            self._param_grads(dy, self._dy_cols(dy, in_size), x_mat)

    def _dy_cols(self, dy, in_size):
        """im2col of the upstream gradient, into a scratch array reused every call."""
        (kh, kw), (h, w) = self.kernel_size, in_size
        work = self._work_array("dy_cols", (self.out_channels * kh * kw, h * w * dy.shape[0]), dy)
        return im2col(dy, self.kernel_size, self.stride, in_size, self.padding, out=work)

    def _param_grads(self, dy, dy_cols, x_mat):
        if self.requires_grad:
            add_matmul(self.grads["weight"], x_mat, dy_cols.T)
            if "bias" in self.params:
                self.grads["bias"] += dy.sum(axis=(0, 2, 3))

    def __repr__(self):
        return (f"ConvTranspose2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, output_padding={self.output_padding}, "
                f"bias={'bias' in self.params})")
