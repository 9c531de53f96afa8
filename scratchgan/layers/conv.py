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
Everything is plain slicing and matrix products (``fastpath.matmul``), so it runs unchanged on
NumPy and CuPy. On the GPU, where each strided copy is a kernel launch, im2col and col2im hand
over to one indexed gather each (``fastpath.im2col_by_gather``, ``col2im_by_gather``): the same
values, far fewer launches.
"""
from .. import backend
from ..fastpath import (add_matmul_to_grad, col2im_by_gather, im2col_by_gather, matmul, matmul_into, matmul_tall,
                        reuse_buffer, uses_gather)
from .base import Layer, as_count, as_pair


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


def _windows_inside(offset, stride, padding, size, out_size):
    """Along one axis, for kernel offset ``offset``: the windows o whose pixel
    o*stride + offset - padding lies inside the image [0, size), as (slice of those windows,
    strided slice of their pixels); None when this offset only ever sees padding."""
    first = max(0, -((offset - padding) // stride))     # ceil((padding - offset) / stride), at least 0
    last = min(out_size - 1, (size - 1 + padding - offset) // stride)
    if last < first:
        return None
    start = first * stride + offset - padding
    return slice(first, last + 1), slice(start, start + (last - first) * stride + 1, stride)


def _kernel_is_the_image(kernel, padding, image_size, out_size):
    """True when the kernel is exactly as large as the unpadded image (DCGAN's 7x7 layers on a
    7x7 map or from 1x1 noise): the one window is the image, so im2col and col2im are
    reshapes (row (c, i, j) of the columns is pixel (i, j) of channel c)."""
    return tuple(out_size) == (1, 1) and tuple(padding) == (0, 0) and tuple(kernel) == tuple(image_size)


def im2col(x, kernel, stride, out_size, padding=(0, 0), out=None):
    """Windows of x (N, C, H, W), zero-padded by ``padding``, as columns: shape (C*kh*kw, Ho*Wo*N).

    Row (c, i, j), column (h, w, n) is pixel (i, j) of window (h, w) of channel c of sample n.
    A loop over kernel positions, each filling that position of every window at once::

        for i in range(kh):
            for j in range(kw):
                cols[c, i, j, h, w, n] = x[n, c, h*sh + i - ph, w*sw + j - pw]   (0 in the padding)

    Each (i, j) is one strided copy with the batch innermost. The padded image is never
    built: for each position only the windows whose pixel lies in the padding are zeroed.
    ``out``: a C-contiguous array of the result's shape to fill instead of a new one (every
    element is written).
    """
    (kh, kw), (sh, sw), (ph, pw), (ho, wo) = kernel, stride, padding, out_size
    n, c, h, w = x.shape
    if _kernel_is_the_image(kernel, padding, (h, w), out_size):
        whole = x.transpose(1, 2, 3, 0).reshape(c * kh * kw, n)    # no copy for a channel-major x
        if out is None:
            return whole
        out[...] = whole
        return out
    xp = backend.get_xp(x)
    if uses_gather(xp):                                 # the GPU: one gather instead of a loop (fastpath.py)
        return im2col_by_gather(x, kernel, stride, out_size, padding, out)
    cols = xp.empty((c, kh, kw, ho, wo, n), dtype=x.dtype) if out is None else out.reshape(c, kh, kw, ho, wo, n)
    image = x.transpose(1, 2, 3, 0)                     # (C, H, W, N): the batch innermost
    for i in range(kh):
        rows = _windows_inside(i, sh, ph, h, ho)
        for j in range(kw):
            columns = _windows_inside(j, sw, pw, w, wo)
            block = cols[:, i, j]                       # (C, Ho, Wo, N): position (i, j) of every window
            if rows is None or columns is None:         # this position only ever sees padding
                block.fill(0)
                continue
            (win_h, pix_h), (win_w, pix_w) = rows, columns
            block[:, win_h, win_w] = image[:, pix_h, pix_w]
            block[:, :win_h.start] = 0                  # the windows whose pixel is padding
            block[:, win_h.stop:] = 0
            block[:, win_h, :win_w.start] = 0
            block[:, win_h, win_w.stop:] = 0
    return cols.reshape(c * kh * kw, ho * wo * n)


def col2im(cols, x_shape, kernel, stride, out_size, padding=(0, 0)):
    """Adjoint of im2col: add each column back onto its window of a zero image of shape
    ``x_shape`` (N, C, H, W); what falls into the padding is dropped.

    The same loop over kernel positions, one strided ``+=`` each::

        for i in range(kh):
            for j in range(kw):
                image[n, c, h*sh + i - ph, w*sw + j - pw] += cols[c, i, j, h, w, n]   (unless padding)

    Within one position no two windows share a pixel, so every overlap is summed (a
    fancy-index ``+=`` would drop repeats). Returns the (N, C, H, W) view of a (C, H, W, N) array.
    """
    (kh, kw), (sh, sw), (ph, pw), (ho, wo) = kernel, stride, padding, out_size
    n, c, h, w = x_shape
    if _kernel_is_the_image(kernel, padding, (h, w), out_size):
        return cols.reshape(c, h, w, n).copy().transpose(3, 0, 1, 2)   # a copy: cols may be a reused buffer
    if uses_gather(backend.get_xp(cols)):               # the GPU: one gather and a sum (fastpath.py)
        return col2im_by_gather(cols, x_shape, kernel, stride, out_size, padding)
    cols = cols.reshape(c, kh, kw, ho, wo, n)
    image = backend.get_xp(cols).zeros((c, h, w, n), dtype=cols.dtype)
    for i in range(kh):
        rows = _windows_inside(i, sh, ph, h, ho)
        for j in range(kw):
            columns = _windows_inside(j, sw, pw, w, wo)
            if rows is not None and columns is not None:
                (win_h, pix_h), (win_w, pix_w) = rows, columns
                image[:, pix_h, pix_w] += cols[:, i, j, win_h, win_w]
    return image.transpose(3, 0, 1, 2)


def _scatter_forward(layer, x, W, out_shape, stride, padding):
    """ConvTranspose2d's forward pass with the (C_in, C_out*kh*kw) weight matrix W: (y, X) with
    X = x as a (C_in, H*W*N) matrix and y = col2im(W^T X) + b. Conv2d through the transpose calls it too."""
    X = as_matrix(x)
    Y_cols = reuse_buffer(layer._scratch, "Y_cols", (W.shape[1], X.shape[1]), x)
    matmul_into(W.T, X, out=Y_cols)                    # W^T X
    y = col2im(Y_cols, out_shape, layer.kernel_size, stride, x.shape[2:], padding)
    if "bias" in layer.params:
        y += layer.params["bias"].reshape(1, -1, 1, 1)  # y is ours: add in place
    return y, X


def _windows_of_dy(layer, dy, in_size, stride, padding):
    """dY = im2col(dy), one window per input pixel: the (C_out*kh*kw, H*W*N) matrix of a transposed
    convolution's backward, written into a buffer reused every call."""
    kh, kw = layer.kernel_size
    shape = (layer.out_channels * kh * kw, in_size[0] * in_size[1] * len(dy))
    return im2col(dy, layer.kernel_size, stride, in_size, padding, out=reuse_buffer(layer._scratch, "dY", shape, dy))


def _set_geometry(layer, in_channels, out_channels, kernel_size, stride, padding):
    """Check and store a convolution's channels, kernel size, stride and padding."""
    name = type(layer).__name__
    layer.in_channels = as_count(in_channels, "in_channels", name)
    layer.out_channels = as_count(out_channels, "out_channels", name)
    layer.kernel_size = as_pair(kernel_size, "kernel_size", name, least=1)
    layer.stride = as_pair(stride, "stride", name, least=1)
    layer.padding = as_pair(padding, "padding", name, least=0)
    layer.input_pattern = (None, layer.in_channels, None, None)


class Conv2d(Layer):
    """Cross-correlation y[n, o] = b[o] + sum_c W[o, c] * x[n, c] (PyTorch's Conv2d), weight (out, in, kh, kw).

    With X = im2col(x) of shape (C*kh*kw, Ho*Wo*N) (zero padding included) and W as an
    (O, C*kh*kw) matrix, the forward pass is the matrix product Y = W X. Its backward,
    with dY the upstream gradient as an (O, Ho*Wo*N) matrix:

        dW = dY X^T                   (O, C*kh*kw)
        db = sum over n, h, w of dy   (O,)
        dX = W^T dY,  dx = col2im(dX)   (windows overlapping a pixel add up; padding dropped)

    Double backward (docs/double_backward.md): that backward is linear in W and in dy and does
    not depend on x. For a cotangent u of dx, with U = im2col(u) (the same windows, strides
    and padding):

        ddy = W U                  the convolution of u without bias (the JVP)
        dW += dY U^T               the weight gradient of a convolution of u with upstream dy
        no x-cotangent

    Through the transpose. A stride-1 cross-correlation with padding p is the transposed
    convolution with the flipped kernel V[c, o, i, j] = W[o, c, kh-1-i, kw-1-j] and padding
    q = k-1-p (each output pixel y[h] = sum_i W[i] x[h+i-p]; substitute i = k-1-i'). Its
    matrices have O*kh*kw rows where im2col's have C*kh*kw, so when O*H*W < C*Ho*Wo (fewer output
    than input channels, as in an image-producing last layer: SRResNet's 64 -> 1 9x9 convolution
    forms 81 rows instead of 5,184) the layer computes ConvTranspose2d's passes with V:

        y = col2im(V^T X) + b,   dV = X dY^T,   dX = V dY,   dY = im2col(dy) (padding q)

    and dW is dV flipped back. ``through_transpose``: None (default) picks the smaller of the two;
    True or False forces one (the tests compare them).
    """

    through_transpose = None

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True,
                 init="glorot_uniform", rng=None):
        super().__init__()
        _set_geometry(self, in_channels, out_channels, kernel_size, stride, padding)
        c, o, (kh, kw) = self.in_channels, self.out_channels, self.kernel_size
        self.add_param("weight", (o, c, kh, kw), init, c * kh * kw, o * kh * kw, rng)
        if bias:
            self.add_param("bias", (o,), "zeros", 0, 0, rng)

    def output_shape(self, input_shape):
        n, _, h, w = input_shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return (n, self.out_channels, conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw))

    def _forward(self, x, train):
        out_shape = self.output_shape(x.shape)
        if min(out_shape[2:]) < 1:
            raise ValueError(f"{self}: input {tuple(x.shape)} is smaller than the (padded) kernel")
        if self._goes_through_transpose(x.shape, out_shape):
            return self._forward_through_transpose(x, out_shape)
        X = im2col(x, self.kernel_size, self.stride, out_shape[2:], self.padding)   # (C*kh*kw, Ho*Wo*N)
        Y = matmul(self._weight_matrix(), X)           # Y = W X, C-ordered: the output's own memory
        if "bias" in self.params:
            Y += self.params["bias"].reshape(-1, 1)
        return as_nchw(Y, out_shape), (X, x.shape, False)

    def _backward(self, dy, cache):
        X, x_shape, transposed = cache
        if transposed:
            return self._backward_through_transpose(dy, X, x_shape)
        dY = as_matrix(dy)                             # (O, Ho*Wo*N)
        self._add_param_grads(dY, X)                   # dW += dY X^T, db += sum of dy
        dX = reuse_buffer(self._scratch, "dX", X.shape, dy)
        matmul_into(self._weight_matrix().T, dY, out=dX)   # dX = W^T dY
        return col2im(dX, x_shape, self.kernel_size, self.stride, dy.shape[2:], self.padding)

    def _param_backward(self, dy, cache):
        X, x_shape, transposed = cache
        if transposed:
            self._add_flipped_grads(X, self._im2col_dy(dy, x_shape), dy)
        else:
            self._add_param_grads(as_matrix(dy), X)

    def _goes_through_transpose(self, x_shape, out_shape):
        """Whether to compute this call as the flipped kernel's transposed convolution (see the
        class docstring): stride 1, padding below the kernel size, and a smaller column matrix."""
        possible = (self.stride == (1, 1) and all(p < k for p, k in zip(self.padding, self.kernel_size))
                    and not _kernel_is_the_image(self.kernel_size, self.padding, x_shape[2:], out_shape[2:]))
        if self.through_transpose is not None:
            if self.through_transpose and not possible:
                raise ValueError(f"{self}: only a stride-1 convolution with padding below the kernel size "
                                 f"(and a kernel smaller than the image) goes through the transpose")
            return self.through_transpose
        (_, c, h, w), (_, o, ho, wo) = x_shape, out_shape
        return possible and o * h * w < c * ho * wo

    def _forward_through_transpose(self, x, out_shape):
        """y = col2im(V^T X) + b: ConvTranspose2d's forward pass with the flipped kernel V."""
        y, X = _scatter_forward(self, x, self._flipped_weight_matrix(), out_shape, (1, 1), self._flipped_padding())
        return y, (X, x.shape, True)

    def _backward_through_transpose(self, dy, X, x_shape):
        """dV = X dY^T (dW its flip), db = sum of dy, dX = V dY, with dY = im2col(dy) (padding q)."""
        dY = self._im2col_dy(dy, x_shape)              # (O*kh*kw, H*W*N)
        self._add_flipped_grads(X, dY, dy)
        dX = matmul(self._flipped_weight_matrix(), dY)  # V dY: (C, H*W*N)
        return as_nchw(dX, x_shape)

    def _im2col_dy(self, dy, x_shape):
        """im2col(dy) with the flipped padding, one window per input pixel (a reused buffer)."""
        return _windows_of_dy(self, dy, x_shape[2:], (1, 1), self._flipped_padding())

    def _add_flipped_grads(self, X, dY, dy):
        """dW += flip(X dY^T) and db += the sum of dy over n, h, w, when parameter gradients are on."""
        if self.requires_grad:
            dV = matmul_tall(X, dY.T).reshape(self.in_channels, self.out_channels, *self.kernel_size)
            self.grads["weight"] += dV[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
            if "bias" in self.params:
                self.grads["bias"] += dy.sum(axis=(0, 2, 3))

    def _flipped_weight_matrix(self):
        """V[c, o, i, j] = W[o, c, kh-1-i, kw-1-j] as a (C, O*kh*kw) matrix (a small copy)."""
        return self.params["weight"][:, :, ::-1, ::-1].transpose(1, 0, 2, 3).reshape(self.in_channels, -1)

    def _flipped_padding(self):
        """The transposed convolution's padding q = k - 1 - p."""
        return tuple(k - 1 - p for k, p in zip(self.kernel_size, self.padding))

    def _double_backward(self, ddx, cache, dy):
        out_shape = tuple(dy.shape)
        (kh, kw), (n, _, ho, wo) = self.kernel_size, out_shape
        cols_shape = (self.in_channels * kh * kw, ho * wo * n)
        U = im2col(ddx, self.kernel_size, self.stride, out_shape[2:], self.padding,
                   out=reuse_buffer(self._scratch, "U", cols_shape, ddx))   # the windows of u
        if self.requires_grad:
            add_matmul_to_grad(self.grads["weight"], as_matrix(dy), U.T)   # dW += dY U^T
        return as_nchw(matmul(self._weight_matrix(), U), out_shape), None   # ddy = W U

    def _add_param_grads(self, dY, X):
        """dW += dY X^T and db += the row sums of dY, when parameter gradients are on."""
        if self.requires_grad:
            add_matmul_to_grad(self.grads["weight"], dY, X.T)
            if "bias" in self.params:
                self.grads["bias"] += dY.sum(axis=1)

    def _weight_matrix(self):
        """W as an (O, C*kh*kw) matrix (a view)."""
        return self.params["weight"].reshape(self.out_channels, -1)

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
        _set_geometry(self, in_channels, out_channels, kernel_size, stride, padding)
        self.output_padding = as_pair(output_padding, "output_padding", "ConvTranspose2d", least=0)
        if any(op >= s for op, s in zip(self.output_padding, self.stride)):
            raise ValueError(f"ConvTranspose2d: output_padding {self.output_padding} must be smaller "
                             f"than stride {self.stride}")
        c, o, (kh, kw) = self.in_channels, self.out_channels, self.kernel_size
        self.add_param("weight", (c, o, kh, kw), init, o * kh * kw, c * kh * kw, rng)
        if bias:
            self.add_param("bias", (o,), "zeros", 0, 0, rng)

    def output_shape(self, input_shape):
        n, _, h, w = input_shape
        sizes = [conv_transpose_output_size(size, k, s, p, op) for size, k, s, p, op in
                 zip((h, w), self.kernel_size, self.stride, self.padding, self.output_padding)]
        return (n, self.out_channels, *sizes)

    def _forward(self, x, train):
        out_shape = self.output_shape(x.shape)
        if min(out_shape[2:]) < 1:
            raise ValueError(f"{self}: padding {self.padding} leaves no output for input {tuple(x.shape)}")
        y, X = _scatter_forward(self, x, self._weight_matrix(), out_shape, self.stride, self.padding)
        return y, (X, x.shape[2:])                     # y = col2im(W^T X) + b; X: (C_in, H*W*N)

    def _backward(self, dy, cache):
        X, in_size = cache
        dY = self._im2col_dy(dy, in_size)              # im2col(dy): (C_out*kh*kw, H*W*N)
        self._add_param_grads(X, dY, dy)               # dW += X dY^T, db += sum of dy
        dX = matmul(self._weight_matrix(), dY)         # W dY: (C_in, H*W*N)
        return as_nchw(dX, (len(dy), self.in_channels, *in_size))

    def _param_backward(self, dy, cache):
        if self.requires_grad:
            X, in_size = cache
            self._add_param_grads(X, self._im2col_dy(dy, in_size), dy)

    def _im2col_dy(self, dy, in_size):
        """dY = im2col(dy): (C_out*kh*kw, H*W*N), written into a buffer reused every call."""
        return _windows_of_dy(self, dy, in_size, self.stride, self.padding)

    def _add_param_grads(self, X, dY, dy):
        """dW += X dY^T and db += the sum of dy over n, h, w, when parameter gradients are on."""
        if self.requires_grad:
            add_matmul_to_grad(self.grads["weight"], X, dY.T)
            if "bias" in self.params:
                self.grads["bias"] += dy.sum(axis=(0, 2, 3))

    def _weight_matrix(self):
        """W as a (C_in, C_out*kh*kw) matrix (a view)."""
        return self.params["weight"].reshape(self.in_channels, -1)

    def __repr__(self):
        return (f"ConvTranspose2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, output_padding={self.output_padding}, "
                f"bias={'bias' in self.params})")
