"""Every layer and loss against float64 finite differences (the suite behind `scratchgan gradcheck`)."""
import numpy as np
import pytest

import scratchgan.layers as L
from scratchgan.backend import RNG
from scratchgan.cli import main
from scratchgan.gradcheck import (TOLERANCE, check_layer, check_loss, numeric_gradient,
                                  rel_error)
from scratchgan.gradcheck_cases import Case, all_cases, format_table, run_case, run_suite

CASES = all_cases()


@pytest.mark.parametrize("case", CASES, ids=[f"{c.name}[{c.config}]" for c in CASES])
def test_gradients_match_finite_differences(case):
    errors = run_case(case)
    assert errors, "a case must check at least one gradient"
    for name, err in errors.items():
        assert err < TOLERANCE, f"{case.name} [{case.config}] d{name}: relative error {err:.2e}"


def test_every_parametrized_layer_family_is_checked_with_its_parameters():
    families = {c.name for c in CASES}
    expected = {"Dense", "Maxout", "Conv2d", "ConvTranspose2d", "BatchNorm", "ReLU", "LeakyReLU", "Tanh",
                "Sigmoid", "Softmax", "Dropout", "Reshape", "Flatten", "Chain", "binary_cross_entropy",
                "two_class_cross_entropy",
                "bce_with_logits", "softmax_cross_entropy", "mse", "l1"}
    assert expected <= families
    conv_case = next(c for c in CASES if c.name == "Conv2d")
    assert {"x", "weight", "bias"} <= set(run_case(conv_case))


class _WrongBackwardDense(L.Dense):
    """A Dense whose weight gradient is off by a factor: the checker must catch it."""

    def _backward(self, dy, cache):
        dx = super()._backward(dy, cache)
        self.grads["weight"] *= 1.001
        return dx


def test_checker_catches_a_wrong_parameter_gradient():
    layer = _WrongBackwardDense(4, 3, rng=RNG(0)).to(dtype=np.float64)
    errors = check_layer(layer, np.random.default_rng(0).standard_normal((2, 4)))
    assert errors["x"] < TOLERANCE
    assert errors["weight"] > 1e-4


def test_checker_catches_a_wrong_input_gradient():
    class WrongTanh(L.Tanh):
        def _backward(self, dy, y):
            return dy * (1 - y)  # forgot to square

    errors = check_layer(WrongTanh(), np.random.default_rng(0).standard_normal((3, 4)))
    assert errors["x"] > 1e-2


def test_checker_catches_a_wrong_loss_gradient():
    def half_mse(pred, target):
        value, grad = np.mean((pred - target) ** 2), (pred - target) / pred.size  # missing factor 2
        return value, grad

    assert check_loss(half_mse, np.ones((2, 3)), np.zeros((2, 3)))["pred"] > 0.1


def test_directional_check_on_a_large_dcgan_layer():
    layer = L.ConvTranspose2d(128, 64, 4, stride=2, padding=1, rng=RNG(0)).to(dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((4, 128, 7, 7))
    errors = check_layer(layer, x, directional=True)
    assert set(errors) == {"x", "weight", "bias"}
    assert max(errors.values()) < TOLERANCE


def test_directional_check_catches_a_wrong_gradient():
    layer = _WrongBackwardDense(30, 20, rng=RNG(0)).to(dtype=np.float64)
    errors = check_layer(layer, np.random.default_rng(0).standard_normal((8, 30)), directional=True)
    assert errors["weight"] > 1e-5


def test_numeric_gradient_of_a_known_function():
    x = np.array([0.3, -1.2, 2.0])
    grad = numeric_gradient(lambda: np.sum(np.sin(x)), x)
    assert rel_error(grad, np.cos(x)) < 1e-9
    assert np.array_equal(x, [0.3, -1.2, 2.0]), "x must be restored"


def test_check_layer_requires_float64():
    with pytest.raises(ValueError, match="float64"):
        check_layer(L.Dense(3, 2), np.zeros((2, 3), dtype=np.float32))


def test_check_layer_leaves_batchnorm_running_stats_untouched():
    layer = L.BatchNorm(3).to(dtype=np.float64)
    before = {k: v.copy() for k, v in layer.buffers.items()}
    check_layer(layer, np.random.default_rng(0).standard_normal((4, 3)))
    for k, v in before.items():
        assert np.array_equal(layer.buffers[k], v)


def test_table_reports_failures():
    bad = Case("WrongTanh", "3x4", lambda: (type("WrongTanh", (L.Tanh,), {
        "_backward": lambda self, dy, y: dy * (1 - y)})(), np.random.default_rng(0).standard_normal((3, 4)), True))
    rows = run_suite([bad])
    assert rows[0][2] is False
    table = format_table(rows)
    assert "FAIL" in table and "0 passed, 1 failed" in table


def test_keep_cache_keeps_the_cache_in_eval_mode_too():
    layer = L.BatchNorm(3).to(dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((4, 3))
    y = layer.forward(x, train=False, keep_cache=True)
    assert layer.backward(np.ones_like(y)).shape == x.shape
    layer.forward(x, train=True, keep_cache=False)
    with pytest.raises(RuntimeError, match="without a forward pass"):
        layer.backward(np.ones_like(y))


def test_cli_gradcheck_runs_the_chosen_cases(capsys):
    assert main(["gradcheck", "--only", "flatten", "MSE"]) == 0       # names ignore case
    out = capsys.readouterr().out
    assert "| Flatten" in out and "| mse" in out and "| Dense" not in out
    assert "3 passed, 0 failed" in out and "reference" not in out     # Flatten: first order, double backward


def test_cli_gradcheck_reference_checks_the_reference_functions(capsys):
    assert main(["gradcheck", "--reference", "--only", "ConvTranspose2d", "BatchNorm", "l1"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "configuration" not in line]
    assert len(rows) == 7 + 5 + 1
    assert "reference functions (scratchgan.reference): 13 passed, 0 failed" in out


@pytest.mark.parametrize("reference", [False, True])
def test_cli_gradcheck_rejects_an_unknown_name(capsys, reference):
    assert main(["gradcheck", *(["--reference"] if reference else []), "--only", "Conv2d", "Foo"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err
    assert "unknown name Foo" in lines[0] and "Conv2d" in lines[0] and "binary_cross_entropy" in lines[0]
