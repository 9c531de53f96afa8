"""Finite-difference gradient checks (float64).

For a layer y = f(x; W) and a *random* upstream gradient dy, the scalar
L = sum(y * dy) has dL/dx = backward(dy) and dL/dW = the accumulated grads.
Fourth-order central differences approximate each entry with error O(h^4);
``rel_error`` is CS231n's max_i |a - b| / max(1e-8, |a| + |b|).
A random dy matters: with dy = 1 some gradients vanish identically (BatchNorm's
dx) and the check proves nothing.

``check_layer`` checks a layer object; ``check_function`` checks a pair of CS231n-style
functions (``scratchgan.reference``); ``check_loss`` checks a (value, grad) loss.

Layers with several inputs or outputs (``Parallel``, ``Concat``, ``Fork``, conditional models)
take and give tuples: each floating-point input part is checked as "x0", "x1", ... (integer
class labels have no gradient and are left alone), and every output part gets its own random
upstream gradient.
"""

import numpy as np

from . import backend

TOLERANCE = 1e-7  # CS231n's "happy" band; the suite's cases land between about 1e-15 and 1e-8


def rel_error(a, b):
    a, b = backend.asnumpy(a), backend.asnumpy(b)
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b)))) if a.size else 0.0


def _difference(f, x, direction, df, h):
    """sum(df * D_v f(x)) for a perturbation ``direction`` applied to ``x`` in place (restored after).

    Fourth-order central differences, (f(x - 2h) - 8 f(x - h) + 8 f(x + h) - f(x + 2h)) / 12h,
    have truncation error O(h^4), so a fairly large h keeps rounding noise small.
    Differencing the outputs before weighting them by ``df`` lets unaffected outputs
    cancel exactly instead of adding rounding noise (CS231n's eval_numerical_gradient_array).
    """
    x0 = x.copy()
    values = []
    for k in (-2, -1, 1, 2):
        x[...] = x0 + (k * h) * direction
        values.append(np.array(backend.asnumpy(f()), dtype=np.float64))  # copy: f may return a view of x
    x[...] = x0
    diff = (values[0] - values[3]) + 8 * (values[2] - values[1])
    return float(diff if df is None else np.sum(diff * df)) / (12 * h)


def numeric_gradient(f, x, df=None, h=1e-3):
    """Gradient of sum(df * f(x)) (or of scalar f(x) when df is None) entry by entry."""
    grad = np.zeros(x.shape)
    unit = np.zeros(x.shape)
    for i in range(x.size):
        unit.flat[i] = 1.0
        grad.flat[i] = _difference(f, x, unit, df, h)
        unit.flat[i] = 0.0
    return grad


def directional_error(f, x, analytic, df=None, n_directions=6, h=1e-3, seed=0):
    """Max relative error of <grad, v> against the difference quotient along random unit v.

    Costs four evaluations per direction whatever the size of ``x``: the check for large tensors.
    """
    rng = np.random.default_rng(seed)
    worst = 0.0
    for _ in range(n_directions):
        v = rng.standard_normal(x.shape)
        v /= np.linalg.norm(v)
        numeric = _difference(f, x, v, df, h)
        exact = float(np.sum(backend.asnumpy(analytic) * v))
        worst = max(worst, abs(numeric - exact) / max(1e-8, abs(numeric) + abs(exact)))
    return worst


def upstream_gradient(shape, seed=0):
    """The random dy of a check: never the same draws as an input seeded ``seed``.
    ``shape`` may be a tuple of shapes (a layer with several outputs): then a tuple of arrays."""
    if shape and isinstance(shape[0], tuple):
        return tuple(np.random.default_rng([seed, 1, k]).standard_normal(part) for k, part in enumerate(shape))
    return np.random.default_rng([seed, 1]).standard_normal(shape)


def flat(y):
    """An output as one flat float64 NumPy vector: a tuple's parts one after the other."""
    if isinstance(y, tuple):
        return np.concatenate([flat(part) for part in y]) if y else np.zeros(0)
    return np.asarray(backend.asnumpy(y), dtype=np.float64).ravel()


def input_parts(x, dx):
    """{name: (input array, its analytic gradient)} for the floating-point parts of ``x``:
    {"x": (x, dx)} for an array; {"x0": ..., "x1": ...} for a tuple, leaving out integer parts
    (class labels, which have no gradient). A None gradient of a floating-point part means zero (an input
    the layer ignores, as ``Select``'s), and is checked as zeros."""
    if not isinstance(x, tuple):
        return {} if x.dtype.kind in "iu" else {"x": (x, dx)}
    parts = {}
    for k, part in enumerate(x):
        if part.dtype.kind == "f":
            grad = None if dx is None else dx[k]
            parts[f"x{k}"] = (part, np.zeros_like(backend.asnumpy(part)) if grad is None else grad)
    return parts


def check_layer(layer, x, train=True, seed=0, h=1e-3, directional=False):
    """Check ``backward`` of ``layer`` at ``x`` against finite differences.

    Returns {"x": rel error of dx, "<param>": rel error of each parameter gradient}.
    Buffers (BatchNorm's running statistics) and the global random generator
    (Dropout's masks) are restored before every evaluation, so each one sees the
    same function. ``directional=True`` uses random directions instead of every entry.
    """
    _require_float64(_float_parts(x) + [lyr.params[k] for _, lyr, k in layer.named_parameters()])
    named = [(name, lyr, key) for name, lyr, key in layer.named_parameters()]
    restore = _restorer(layer)
    restore()
    layer.zero_grad()
    y = layer.forward(x, train=train, keep_cache=True)
    dy = upstream_gradient(_shape(y), seed)
    inputs = input_parts(x, layer.backward(dy))
    analytic = {**{k: g for k, (_, g) in inputs.items()}, **{name: lyr.grads[key].copy() for name, lyr, key in named}}
    targets = {**{k: a for k, (a, _) in inputs.items()}, **{name: lyr.params[key] for name, lyr, key in named}}

    def output():
        restore()
        return flat(layer.forward(x, train=train, keep_cache=False))

    errors = _compare(output, targets, analytic, flat(dy), h, seed, directional)
    restore()
    return errors


def check_function(forward, backward, x, params=None, seed=0, h=1e-3, directional=False):
    """Check a pair of pure functions, CS231n style, against finite differences.

    ``forward(x) -> (out, cache)`` reads the arrays of ``params`` ({name: array}, perturbed in
    place, so bind those very arrays into ``forward``); ``backward(dout, cache) -> (dx, {name: grad})``.
    Returns {"x": rel error of dx, name: rel error of each parameter gradient}.
    """
    params = params or {}
    _require_float64([*_float_parts(x), *params.values()])
    out, cache = forward(x)
    dout = upstream_gradient(_shape(out), seed)
    dx, grads = backward(dout, cache)
    if set(grads) != set(params):
        raise ValueError(f"backward returned gradients for {sorted(grads)}, expected {sorted(params)}")
    inputs = input_parts(x, dx)
    return _compare(lambda: flat(forward(x)[0]), {**{k: a for k, (a, _) in inputs.items()}, **params},
                    {**{k: g for k, (_, g) in inputs.items()}, **grads}, flat(dout), h, seed, directional)


def _compare(output, targets, analytic, dy, h, seed, directional):
    """{name: rel error of analytic[name] against differences of output() along targets[name]}."""
    errors = {}
    for name, array in targets.items():
        if directional:
            errors[name] = directional_error(output, array, analytic[name], dy, h=h, seed=seed)
        else:
            errors[name] = rel_error(analytic[name], numeric_gradient(output, array, dy, h))
    return errors


def check_loss(loss_fn, pred, target, h=1e-4):
    """Relative error of a loss's gradient with respect to its prediction."""
    _require_float64([pred])
    _, analytic = loss_fn(pred, target)
    return {"pred": rel_error(analytic, numeric_gradient(lambda: loss_fn(pred, target)[0], pred, h=h))}


def _shape(y):
    return tuple(_shape(part) for part in y) if isinstance(y, tuple) else tuple(y.shape)


def _float_parts(x):
    """The arrays of an input that must be float64 (a tuple's integer labels are not)."""
    parts = x if isinstance(x, tuple) else (x,)
    return [part for part in parts if part.dtype.kind not in "iu"]


def _require_float64(arrays):
    if any(a.dtype != np.float64 for a in arrays) or any(backend.get_xp(a) is not np for a in arrays):
        raise ValueError("gradient checks need float64 NumPy arrays: build the layer after "
                         "set_default_dtype('float64') or call layer.to('cpu', dtype='float64')")


# -- second order: the double backward and gradient penalties (docs/double_backward.md) ---------------

def check_double_backward(layer, x, train=True, seed=0, h=1e-3):
    """Check ``double_backward`` of ``layer`` at ``x`` against finite differences of its backward.

    The function differentiated is the backward itself, g = B(x, W, dy) = J(x, W)^T dy, for a
    random dy; with a random cotangent ddx the scalar is ddx . g, whose gradients are the
    double backward's ddy (with respect to dy), dx (x) and each parameter's second-order
    gradient. Returns {"x": error, "dy": error, "<param>": error}.
    """
    _require_float64([x] + [lyr.params[k] for _, lyr, k in layer.named_parameters()])
    named = layer.named_parameters()
    restore = _restorer(layer)
    y = layer.forward(x, train=train, keep_cache=True)
    dy = upstream_gradient(y.shape, seed)
    layer.requires_grad_(False)
    try:
        g = layer.backward(dy, keep_cache=True)
    finally:
        layer.requires_grad_(True)
    ddx = np.random.default_rng([seed, 2]).standard_normal(g.shape)
    layer.zero_grad()
    ddy, dx = layer.double_backward(ddx)
    analytic = {"x": np.zeros_like(x) if dx is None else dx, "dy": ddy,
                **{name: lyr.grads[key].copy() for name, lyr, key in named}}
    targets = {"x": x, "dy": dy, **{name: lyr.params[key] for name, lyr, key in named}}

    def input_gradient():
        restore()
        layer.forward(x, train=train, keep_cache=True)
        layer.requires_grad_(False)
        try:
            return layer.backward(dy)
        finally:
            layer.requires_grad_(True)

    errors = _compare(input_gradient, targets, analytic, ddx, h, seed, directional=False)
    restore()
    return errors


def _restorer(layer):
    """A function putting back ``layer``'s buffers and the global random generator as they are now,
    so that every evaluation sees the same function (Dropout's masks, BatchNorm's statistics)."""
    buffers = {(name, k): v.copy() for name, lyr in layer.named_layers() for k, v in lyr.buffers.items()}
    rng_state = backend.global_rng().state_dict()

    def restore():
        for name, lyr in layer.named_layers():
            for k in lyr.buffers:
                lyr.buffers[k][...] = buffers[(name, k)]
        backend.global_rng().load_state_dict(rng_state)
    return restore


def check_function_double_backward(forward, backward, double_backward, x, params=None, seed=0, h=1e-3):
    """``check_double_backward`` for a CS231n triple (``scratchgan.reference``): ``forward(x) -> (out,
    cache)``, ``backward(dout, cache) -> (dx, {name: grad})``, ``double_backward(ddx, cache, dout) ->
    (ddout, dx, {name: grad})``, with the arrays of ``params`` bound into ``forward`` (perturbed in place)."""
    params = params or {}
    _require_float64([x, *params.values()])
    out, cache = forward(x)
    dout = upstream_gradient(out.shape, seed)
    g, _ = backward(dout, cache)
    ddx = np.random.default_rng([seed, 2]).standard_normal(g.shape)
    ddout, dx, grads = double_backward(ddx, cache, dout)
    if set(grads) != set(params):
        raise ValueError(f"double_backward returned gradients for {sorted(grads)}, expected {sorted(params)}")
    return _compare(lambda: backward(dout, forward(x)[1])[0], {"x": x, "dy": dout, **params},
                    {"x": dx, "dy": ddout, **grads}, ddx, h, seed, directional=False)


def check_penalty(penalty, model, x, h=1e-3, input_directions=0):
    """Check a gradient penalty's gradients against central differences of the penalty itself.

    ``penalty``: a ``scratchgan.penalties`` penalty (``value_and_grads(model, x, input_grad=True)``
    adds the penalty's parameter gradients into ``model.grads`` and returns (value, dP/dx)).
    Returns {"x": error, "<param>": error}: every entry of x and of every parameter; with
    ``input_directions`` > 0, dP/dx is checked along that many random directions instead of entry
    by entry (``directional_error``), for critics whose dP/dx entries lie below the differences'
    rounding floor (a piecewise-linear critic with a minibatch layer: gradcheck_cases.py says why).
    """
    named = model.named_parameters()
    _require_float64([x] + [lyr.params[k] for _, lyr, k in named])
    restore = _restorer(model)
    model.zero_grad()
    _, dx = penalty.value_and_grads(model, x, input_grad=True)
    analytic = {"x": dx, **{name: lyr.grads[key].copy() for name, lyr, key in named}}
    targets = {"x": x, **{name: lyr.params[key] for name, lyr, key in named}}

    def value():
        restore()
        return np.array(penalty.value(model, x))

    errors = {name: (directional_error(value, array, analytic[name], n_directions=input_directions, h=h)
                     if name == "x" and input_directions else rel_error(analytic[name], numeric_gradient(value, array, h=h)))
              for name, array in targets.items()}
    restore()
    return errors
