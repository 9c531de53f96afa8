"""Array operations per training step: what the GPU would launch, counted on the CPU.

    python demos/op_count.py dcgan mlp                   # the GPU's path: gathers, fused kernels
    python demos/op_count.py dcgan --path gpu-unfused    # the GPU's with SCRATCHGAN_FUSED=off
    python demos/op_count.py dcgan --path cpu            # the CPU's: im2col/col2im loops, no fused kernels
    python demos/op_count.py dcgan --by operation        # which operations, not where

On the GPU every array operation is a kernel launch issued from Python (a CuPy call costs several
microseconds of host time), and the benchmark's step was measured to be bound by issuing them, not
by arithmetic (``shared/bench/GPU-MEASUREMENTS.md``, docs/performance.md). So the number of
operations per step is a proxy of the GPU step's time that the CPU can count. How: the step runs on
NumPy with every array a ``CountedArray``, an ndarray subclass that counts each ufunc call (operators
and in-place operators included), each NumPy function (``einsum``, ``take``, ...), each slice
assignment, ``fill``, copy and conversion, and each new array that is not left uninitialized. Views
(reshape, transpose, slicing) cost nothing, as on the GPU. ``--batch`` changes nothing but the time
taken: the count does not depend on it.
"""
import argparse
import collections
import re
import sys
from contextlib import contextmanager

import numpy as np

COUNTS = collections.Counter()        # (place, operation) -> count
_counting = [False]
_cupy_layouts = [False]               # ufuncs make C-ordered outputs, as CuPy's do (the GPU paths)
FREE = ("empty", "empty_like")        # new arrays that launch nothing (CuPy allocates from its pool)
CREATION = ("empty", "empty_like", "zeros", "zeros_like", "ones", "ones_like", "full", "full_like", "asarray",
            "array", "ascontiguousarray")


def _place():
    """file:function of the innermost scratchgan frame that issued the operation."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if "scratchgan" in name and not name.endswith("op_count.py"):
            return f"{name.split('scratchgan/')[-1]}:{frame.f_code.co_name}"
        frame = frame.f_back
    return "?"


def count(operation):
    if _counting[0]:
        COUNTS[(_place(), operation)] += 1


def plain(value):
    """The same data as plain ndarrays (through lists, tuples and dicts)."""
    if isinstance(value, CountedArray):
        return value.view(np.ndarray)
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def counted(value):
    """ndarrays (also inside a tuple) as CountedArrays, sharing their memory."""
    if isinstance(value, np.ndarray) and not isinstance(value, CountedArray):
        return value.view(CountedArray)
    if isinstance(value, tuple):
        return tuple(counted(v) for v in value)
    return value


class CountedArray(np.ndarray):
    """An ndarray that counts the operations done with it (see the module docstring)."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        count(f"{ufunc.__name__}.{method}" if method != "__call__" else ufunc.__name__)
        result = getattr(ufunc, method)(*plain(inputs), **plain(kwargs))
        if _cupy_layouts[0] and method == "__call__" and kwargs.get("out") is None:
            result = np.ascontiguousarray(result)      # CuPy makes a ufunc's new output C-ordered (NumPy: K)
        return counted(result)

    def __array_function__(self, func, types, args, kwargs):
        count(func.__name__)
        return counted(func(*plain(args), **plain(kwargs)))

    def __setitem__(self, key, value):
        count("setitem")
        self.view(np.ndarray)[plain(key)] = plain(value)

    def fill(self, value):
        count("fill")
        self.view(np.ndarray).fill(value)

    def copy(self, *args, **kwargs):
        count("copy")
        return counted(self.view(np.ndarray).copy(*args, **kwargs))

    def astype(self, *args, **kwargs):
        count("astype")
        return counted(self.view(np.ndarray).astype(*args, **kwargs))

    def reshape(self, *args, **kwargs):
        base = self.view(np.ndarray)
        result = base.reshape(*args, **kwargs)
        if result.size and not np.shares_memory(result, base):    # both plain: not counted
            count("reshape (a copy)")
        return counted(result)


@contextmanager
def counted_creation():
    """NumPy's array-creating functions return CountedArrays (and count, unless the array is left empty)."""
    originals = {name: getattr(np, name) for name in CREATION}

    def counting(name, original):
        def create(*args, **kwargs):
            result = original(*plain(args), **plain(kwargs))
            source = args[0] if args else None
            copied = isinstance(source, np.ndarray) and not np.shares_memory(plain(result), plain(source))
            if name not in FREE and (name not in ("asarray", "ascontiguousarray") or copied):
                count(name)
            return counted(result)
        return create

    for name, original in originals.items():
        setattr(np, name, counting(name, original))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(np, name, original)


def count_arrays_in(model):
    """Every parameter, gradient and buffer of a model as a CountedArray (in place of the originals)."""
    for _, layer in model.named_layers():
        for store in (layer.params, layer.grads, layer.buffers):
            for key in store:
                store[key] = counted(store[key])


@contextmanager
def the_gpus_choices(fused_kernels=True):
    """im2col/col2im by gather and (``fused_kernels``) the fused kernels of the optimizers and BatchNorm,
    as on the GPU. A fused kernel counts as one operation; its body, run as NumPy passes (``run_body``),
    stands in for it."""
    import os
    saved_method = os.environ.get("SCRATCHGAN_IM2COL")
    os.environ["SCRATCHGAN_IM2COL"] = "gather"
    users = [module for name, module in sys.modules.items()
             if name.startswith("scratchgan.") and hasattr(module, "uses_fused_kernels")]
    saved = [(m, m.uses_fused_kernels) for m in users]
    try:
        from scratchgan import gpu_kernels
    except ImportError:                                      # a version without fused kernels
        gpu_kernels = None
    saved_compiled = getattr(gpu_kernels, "compiled", None)

    def compiled(kernel):
        def launch(*args):
            count(kernel.name)
            was_counting, _counting[0] = _counting[0], False
            try:
                return GATHER_STAND_INS[kernel.name](*plain(args)) if kernel.name in GATHER_STAND_INS \
                    else run_body(kernel, *args)
            finally:
                _counting[0] = was_counting
        return launch

    if fused_kernels:
        gpu_kernels.compiled = compiled
        for module in users:
            module.uses_fused_kernels = lambda xp: True
    try:
        yield
    finally:
        if saved_method is None:
            os.environ.pop("SCRATCHGAN_IM2COL")
        else:
            os.environ["SCRATCHGAN_IM2COL"] = saved_method
        if saved_compiled is not None:
            gpu_kernels.compiled = saved_compiled
        for module, uses in saved:
            module.uses_fused_kernels = uses


def im2col_stand_in(image, pixel, positions, pixels, batch, cols):
    """gpu_kernels.IM2COL_GATHER on NumPy: pixel[k] of each channel and sample, 0 where pixel[k] is -1."""
    channels = image.shape[0]
    flat = np.concatenate([image.reshape(channels, pixels, batch), np.zeros((channels, 1, batch), image.dtype)], 1)
    cols[...] = np.take(flat, np.where(pixel < 0, pixels, pixel), axis=1)


def col2im_stand_in(cols, sources, weight, slots, positions, pixels, batch, image):
    """gpu_kernels.COL2IM_GATHER on NumPy: each pixel's weighted sources, summed in slot order."""
    gathered = np.take(cols.reshape(-1, positions, batch), sources, axis=1)       # (C, pixels, slots, N)
    image[...] = (gathered * weight.reshape(1, pixels, slots, 1)).sum(axis=2)


GATHER_STAND_INS = {"scratchgan_im2col": im2col_stand_in, "scratchgan_col2im": col2im_stand_in}  # raw indexing:
# their bodies are C loops, which run_body does not translate

# The C of the kernels' bodies that differs from Python, and the C functions they call, for ``run_body``.
C_TO_PYTHON = [(re.compile(r"\(T\)\s*"), ""),                                             # (T)1 -> 1
               (re.compile(r"\(([^()?:]+)\?([^()?:]+):([^()?:]+)\)"), r"where(\1, \2, \3)")]  # (a ? b : c)
C_FUNCTIONS = {"sqrt": np.sqrt, "exp": np.exp, "log": np.log, "log1p": np.log1p, "tanh": np.tanh, "fabs": np.abs,
               "max": np.maximum, "where": np.where}
STATEMENT = re.compile(r"^(?:T\s+)?(\w+)\s*([-+]?=)\s*(.+)$", re.S)      # [T] target (=|+=|-=) expression


def run_body(kernel, *args):
    """What an ElementwiseKernel computes, on NumPy: its C body statement by statement, each over whole
    (broadcast) arrays. Outputs passed are updated in place; outputs left out are made and returned."""
    from scratchgan.gpu_kernels import parameters
    inputs = [(kind, name) for kind, name, _ in parameters(kernel.in_params)]
    outputs = [(kind, name) for kind, name, _ in parameters(kernel.out_params)]
    scope = {**C_FUNCTIONS, **{name: value for (_, name), value in zip(inputs + outputs, plain(args))}}
    arrays = [a for (kind, _), a in zip(inputs + outputs, plain(args)) if isinstance(a, np.ndarray)]
    shape = np.broadcast_shapes(*(a.shape for a in arrays))
    t = next(a.dtype for (kind, _), a in zip(inputs, plain(args)) if kind == "T" and isinstance(a, np.ndarray))
    made = [(kind, name) for kind, name in outputs if name not in scope]
    for kind, name in made:
        scope[name] = np.empty(shape, t if kind == "T" else np.dtype(kind))
    outputs = [name for _, name in outputs]
    for statement in filter(None, (s.strip() for s in kernel.body.split(";"))):
        for pattern, replacement in C_TO_PYTHON:
            statement = pattern.sub(replacement, statement)
        target, operator, expression = STATEMENT.match(statement).groups()
        result = eval(expression, {}, scope)
        if operator == "+=":
            scope[target] += result
        elif operator == "-=":
            scope[target] -= result
        elif target in outputs:
            scope[target][...] = result
        else:
            scope[target] = result
    results = [counted(scope[name]) for _, name in made]
    return None if not results else results[0] if len(results) == 1 else tuple(results)


PATHS = ("gpu", "gpu-unfused", "cpu")


def operations_per_step(workload, batch=8, path="gpu"):
    """Counter of (place, operation) for one training step of the benchmark's ``workload``,
    after two uncounted steps (buffers and optimizer state made)."""
    from scratchgan import bench
    COUNTS.clear()
    trainer = bench.build_trainer(workload)
    real = counted(bench.real_batch(workload, batch))
    count_arrays_in(trainer.G)
    count_arrays_in(trainer.D)
    choices = _nothing() if path == "cpu" else the_gpus_choices(fused_kernels=path == "gpu")
    _cupy_layouts[0] = path != "cpu"
    try:
        with counted_creation(), choices:
            for _ in range(2):
                trainer.train_step(real)
            _counting[0] = True
            trainer.train_step(real)
    finally:
        _counting[0] = _cupy_layouts[0] = False
    return collections.Counter(COUNTS)


@contextmanager
def _nothing():
    yield


def main(argv=None):
    from scratchgan import bench
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workloads", nargs="+", choices=bench.WORKLOADS)
    parser.add_argument("--path", choices=PATHS, default="gpu",
                        help="gpu: gathers and fused kernels (the default); gpu-unfused: as SCRATCHGAN_FUSED=off; "
                             "cpu: im2col/col2im loops, no fused kernels")
    parser.add_argument("--by", choices=("place", "operation"), default="place")
    parser.add_argument("--top", type=int, default=25, help="rows of the breakdown")
    parser.add_argument("--batch", type=int, default=8, help="rows of the batch (the count does not depend on it)")
    args = parser.parse_args(argv)
    for workload in args.workloads:
        counts = operations_per_step(workload, args.batch, args.path)
        grouped = collections.Counter()
        for (place, operation), n in counts.items():
            grouped[place if args.by == "place" else operation] += n
        print(f"{workload}: {sum(counts.values())} array operations per training step ({args.path} path)")
        for key, n in grouped.most_common(args.top):
            print(f"  {n:6d}  {key}")


if __name__ == "__main__":
    main()
