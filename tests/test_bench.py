"""The benchmark command (smoke runs on tiny steps, no timing assertions) and the optimised
code paths behind it: they must compute exactly the maths of the plain versions."""
import json
import sys
import textwrap

import numpy as np
import pytest

import scratchgan.layers as L
from scratchgan import Adam, bench
from scratchgan.backend import RNG
from scratchgan.layers.base import add_matmul, matmul
from scratchgan.layers.conv import as_matrix, col2im, conv_output_size, im2col

# -- the bench command --------------------------------------------------------------------


@pytest.mark.parametrize("workload", bench.WORKLOADS)
def test_run_benchmark_smoke(workload):
    r = bench.run_benchmark(workload, "cpu", batch=4, steps=2, warmup=1)
    assert (r["workload"], r["device"], r["batch"], r["steps"], r["warmup"]) == (workload, "cpu", 4, 2, 1)
    assert 0 < r["min_ms"] <= r["median_ms"] and r["mean_ms"] > 0
    assert r["images_per_s"] == pytest.approx(4 / (r["median_ms"] / 1e3), rel=1e-2)
    assert r["gflop_per_step"] == pytest.approx(bench.SPEC_GFLOP[workload] * 4 / bench.SPEC_BATCH[workload], rel=1e-3)
    assert r["gflop_per_s"] == pytest.approx(r["gflop_per_step"] / (r["median_ms"] / 1e3), rel=1e-2)
    assert r["peak_memory_mib"] > 0 and r["memory_kind"].startswith("rss")
    assert r["spec_conditions"] is False and r["dtype"] == "float32"


@pytest.mark.gpu
def test_run_benchmark_on_the_gpu_synchronizes_and_reports_pool_bytes(cupy):
    r = bench.run_benchmark("dcgan", "gpu", batch=4, steps=2, warmup=1)
    assert r["device"] == "gpu" and 0 < r["min_ms"] <= r["median_ms"]
    assert r["memory_kind"] == "gpu_pool" and r["peak_memory_mib"] > 0


def test_benchmarked_models_are_the_specs_workloads():
    """Parameter counts of the SPEC's layer lists (as PyTorch counts them), float32 throughout."""
    expected = {"mlp": (28 * 500 + 500 + 500 * 784 + 784, 784 * 500 + 500 + 500 * 2 + 2),
                "dcgan": (100 * 256 * 49 + 2 * 256 + 256 * 128 * 16 + 2 * 128 + 128 * 16,
                          16 * 64 + 64 * 128 * 16 + 2 * 128 + 128 * 49)}
    for workload, (g_params, d_params) in expected.items():
        trainer = bench.build_trainer(workload)
        assert (trainer.G.num_params(), trainer.D.num_params()) == (g_params, d_params)
        assert trainer.config.batch_size == bench.SPEC_BATCH[workload]
        assert all(layer.params[k].dtype == np.float32 for net in (trainer.G, trainer.D)
                   for _, layer, k in net.named_parameters())


def test_real_batches_have_the_workloads_shape_and_range():
    mlp, dcgan = bench.real_batch("mlp", 6), bench.real_batch("dcgan", 6)
    assert mlp.shape == (6, 784) and mlp.dtype == np.float32 and set(np.unique(mlp)) <= {0.0, 1.0}
    assert dcgan.shape == (6, 1, 28, 28) and dcgan.dtype == np.float32
    assert dcgan.min() >= -1 and dcgan.max() <= 1 and dcgan.min() < -0.5 < 0.5 < dcgan.max()


def test_one_benchmark_step_trains_both_networks():
    trainer = bench.build_trainer("dcgan", batch=4)
    g0, d0 = trainer.G.state_dict(), trainer.D.state_dict()
    trainer.train_step(bench.real_batch("dcgan", 4))
    g1, d1 = trainer.G.state_dict(), trainer.D.state_dict()
    assert not np.array_equal(g0["0.weight"], g1["0.weight"]) and not np.array_equal(d0["0.weight"], d1["0.weight"])
    assert trainer.d_steps == trainer.g_steps == 1


@pytest.mark.parametrize("kwargs,name", [({"batch": 0}, "batch"), ({"steps": 0}, "steps"),
                                         ({"warmup": -1}, "warmup"), ({"steps": 2.5}, "steps")])
def test_bad_options_name_the_option(kwargs, name):
    with pytest.raises(bench.BenchError, match=name):
        bench.run_benchmark("mlp", "cpu", **{"batch": 4, "steps": 2, "warmup": 1, **kwargs})


def test_unknown_workload_and_device():
    with pytest.raises(bench.BenchError, match="unknown workload 'vae'"):
        bench.run_benchmark("vae")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        bench.run_benchmark("mlp", "tpu")


def test_cli_prints_one_json_object_per_line(capsys):
    assert bench.main(["--workload", "mlp", "--batch", "4", "--steps", "2", "--warmup", "1", "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["kind"] for r in records] == ["machine", "ours", "machine"]
    assert records[0]["cpu_count"] >= 1 and len(records[0]["load_average"]) == 3
    assert records[1]["workload"] == "mlp" and records[1]["batch"] == 4


def test_cli_text_output_and_errors(capsys):
    assert bench.main(["--workload", "mlp", "--batch", "4", "--steps", "2", "--warmup", "0"]) == 0
    out = capsys.readouterr().out
    assert "mlp    cpu  batch=   4 median_ms=" in out and "not the SPEC's conditions" in out
    assert bench.main(["--workload", "mlp", "--steps", "0"]) == 2
    assert "steps must be an integer >= 1" in capsys.readouterr().err


FAKE_REFERENCE = """
import json, os
def mlp(dev): pass
def dcgan(dev): pass
def bench(name, make, dev, steps):
    with open(os.environ["FAKE_LOG"], "a") as f:
        f.write(f"torch {name} {dev} {steps}\\n")
    return dict(workload=name, device=dev, batch={"mlp": 200, "dcgan": 128}[name], median_ms=MEDIAN, min_ms=1.0)
"""


def fake_reference(tmp_path, median="1000.0"):
    path = tmp_path / "torch_reference.py"
    path.write_text(textwrap.dedent(FAKE_REFERENCE).replace("MEDIAN", median))
    return path


def test_compare_with_torch_interleaves_rounds_and_reports_ratios(tmp_path, monkeypatch):
    log = tmp_path / "log.txt"
    monkeypatch.setenv("FAKE_LOG", str(log))
    events = []
    summaries = bench.compare_with_torch(["mlp"], "cpu", sys.executable, fake_reference(tmp_path), rounds=2,
                                         steps=2, warmup=0, report=lambda kind, r: events.append((kind, r)))
    assert [k for k, _ in events] == ["ours", "torch", "ratio", "ours", "torch", "ratio", "summary"]
    assert log.read_text().splitlines() == ["torch mlp cpu 2", "torch mlp cpu 2"]
    ours = [r["median_ms"] for k, r in events if k == "ours"]
    ratios = [r["ratio"] for k, r in events if k == "ratio"]
    assert ratios == pytest.approx([m / 1000.0 for m in ours], abs=1e-3)
    (summary,) = summaries
    assert summary["rounds"] == 2 and summary["ratio_median"] == pytest.approx(np.median(ratios), abs=1e-3)
    assert summary["ratio_best"] == pytest.approx(min(ours) / 1000.0, abs=1e-3)


def test_compare_torch_cli_checks_batch_and_reference(tmp_path, capsys):
    ref = fake_reference(tmp_path)
    assert bench.main(["--workload", "mlp", "--batch", "0", "--compare-torch", sys.executable,
                       "--torch-reference", str(ref)]) == 2
    assert "batch must be an integer >= 1" in capsys.readouterr().err
    assert bench.main(["--workload", "mlp", "--compare-torch", sys.executable,
                       "--torch-reference", str(tmp_path / "missing.py")]) == 2
    assert "torch_reference.py not found" in capsys.readouterr().err


def test_the_pytorch_reference_ships_with_the_package(tmp_path, monkeypatch, capsys):
    import ast
    from pathlib import Path

    import scratchgan
    reference = bench.find_torch_reference()
    assert reference == Path(scratchgan.__file__).resolve().parent / "bench_torch.py" and reference.is_file()
    tree = ast.parse(reference.read_text())
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert {"mlp", "dcgan", "bench"} <= functions   # what the runner calls
    # the default is used without --torch-reference, and --torch-reference overrides it
    used = []
    monkeypatch.setattr(bench, "compare_with_torch", lambda workloads, device, python, ref, *a, **k: used.append(ref))
    assert bench.main(["--workload", "mlp", "--compare-torch", sys.executable]) == 0
    assert bench.main(["--workload", "mlp", "--compare-torch", sys.executable,
                       "--torch-reference", str(fake_reference(tmp_path))]) == 0
    assert used == [reference, tmp_path / "torch_reference.py"]


def test_failing_reference_is_reported(tmp_path):
    bad = tmp_path / "torch_reference.py"
    bad.write_text("raise ImportError('No module named torch')\n")
    with pytest.raises(bench.BenchError, match="No module named torch"):
        bench.run_torch_reference(sys.executable, bad, "mlp", "cpu", steps=1)


# -- the optimised paths compute the plain maths ------------------------------------------

def f64(layer):
    return layer.to(dtype=np.float64)


@pytest.mark.parametrize("make,shape", [
    (lambda: L.Dense(6, 5, "tanh", rng=RNG(1)), (4, 6)),
    (lambda: L.Conv2d(3, 4, 4, 2, 1, rng=RNG(1)), (2, 3, 8, 8)),
    (lambda: L.ConvTranspose2d(3, 2, 4, 2, 1, rng=RNG(1)), (2, 3, 5, 5)),
    (lambda: L.Chain(L.Conv2d(2, 3, 3, 1, 1, rng=RNG(1)), L.BatchNorm(3), L.LeakyReLU(0.2),
                     L.Conv2d(3, 1, 4, rng=RNG(2))), (3, 2, 4, 4)),
])
def test_backward_without_input_gradient_adds_the_same_parameter_gradients(make, shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    full, params_only = f64(make()), f64(make())
    dy = rng.standard_normal(full.forward(x).shape)
    params_only.forward(x)
    dx = full.backward(dy)
    assert dx.shape == x.shape
    assert params_only.backward(dy, input_grad=False) is None
    for (name, a, k), (_, b, _) in zip(full.named_parameters(), params_only.named_parameters()):
        np.testing.assert_allclose(b.grads[k], a.grads[k], rtol=1e-12, atol=1e-14, err_msg=name)


def test_conv_outputs_are_channel_major_views_the_next_layer_reads_without_copying():
    conv = L.Conv2d(2, 3, 4, 2, 1)
    y = conv.forward(np.random.default_rng(0).standard_normal((5, 2, 8, 8)).astype(np.float32))
    assert y.shape == (5, 3, 4, 4) and not y.flags.c_contiguous
    assert np.shares_memory(as_matrix(y), y)           # (C, H*W*N) is a view: no transpose copy
    bn = L.BatchNorm(3)
    z = bn.forward(y)
    assert np.shares_memory(as_matrix(z), z)


def test_layers_accept_any_input_layout():
    """The same values as a C-contiguous NCHW array and as a channel-major view give the same outputs."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 6, 6))
    x_channel_major = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    for make in (lambda: L.Conv2d(3, 2, 3, 2, 1, rng=RNG(0)), lambda: L.ConvTranspose2d(3, 2, 4, 2, 1, rng=RNG(0)),
                 lambda: L.BatchNorm(3), lambda: L.LeakyReLU(0.2)):
        a, b = f64(make()), f64(make())
        ya, yb = a.forward(x), b.forward(x_channel_major)
        np.testing.assert_allclose(ya, yb, rtol=1e-13, atol=1e-13)
        dy = rng.standard_normal(ya.shape)
        np.testing.assert_allclose(a.backward(dy), b.backward(np.ascontiguousarray(dy)), rtol=1e-12, atol=1e-13)


def test_im2col_padding_equals_im2col_of_the_padded_input():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 6))
    kernel, stride, padding, out = (4, 3), (2, 2), (1, 2), (3, 4)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (2, 2)))
    np.testing.assert_array_equal(im2col(x, kernel, stride, out, padding), im2col(padded, kernel, stride, out))
    cols = rng.standard_normal((3 * 4 * 3, 3 * 4 * 2))
    full = col2im(cols, padded.shape, kernel, stride, out)
    np.testing.assert_allclose(col2im(cols, x.shape, kernel, stride, out, padding), full[:, :, 1:-1, 2:-2],
                               rtol=1e-14)


@pytest.mark.parametrize("size,kernel,stride,padding", [
    ((7, 6), (4, 3), (2, 2), (1, 2)),    # padding on both sides, stride 2
    ((14, 14), (4, 4), (2, 2), (1, 1)),  # DCGAN's Conv(64->128) geometry
    ((1, 2), (3, 3), (1, 1), (2, 2)),    # kernel positions that only ever see padding
    ((5, 5), (3, 3), (1, 1), (0, 0)),    # no padding: every window inside
])
def test_im2col_into_a_dirty_buffer_zeroes_exactly_the_padding(size, kernel, stride, padding):
    """im2col writes every element of ``out``: the copied pixels, and zeros where a window lies in
    the padding (it zeroes only those, so stale values elsewhere must all be overwritten)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 2, *size))
    out_size = tuple(conv_output_size(s, k, st, p) for s, k, st, p in zip(size, kernel, stride, padding))
    padded = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    expected = im2col(padded, kernel, stride, out_size)
    dirty = np.full(expected.shape, np.nan)
    np.testing.assert_array_equal(im2col(x, kernel, stride, out_size, padding, out=dirty), expected)
    np.testing.assert_array_equal(dirty, expected)


@pytest.mark.parametrize("a_shape,b_shape", [((3, 5), (5, 8)), ((8, 5), (5, 3)), ((4, 4), (4, 4))])
def test_matmul_either_orientation_is_the_product(a_shape, b_shape):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
    np.testing.assert_allclose(matmul(a, b), a @ b, rtol=1e-13)


@pytest.mark.parametrize("a_shape,b_shape,grad_shape", [((3, 5), (5, 8), (3, 8)), ((8, 5), (5, 3), (8, 3)),
                                                       ((4, 6), (6, 12), (4, 3, 2, 2))])
def test_add_matmul_writes_into_a_zero_gradient_and_adds_to_any_other(a_shape, b_shape, grad_shape):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
    product = (a @ b).reshape(grad_shape)
    grad = np.zeros(grad_shape)
    add_matmul(grad, a, b)                      # fresh after zero_grad: written straight in
    np.testing.assert_allclose(grad, product, rtol=1e-13)
    add_matmul(grad, a, b)                      # second pass: accumulated
    np.testing.assert_allclose(grad, 2 * product, rtol=1e-13)
    grad = np.zeros(grad_shape)
    grad.flat[-1] = np.nan                      # not all zeros: NaN must survive, not be overwritten
    add_matmul(grad, a, b)
    assert np.isnan(grad.flat[-1]) and np.allclose(grad.flat[:-1], product.flat[:-1], rtol=1e-13)
    strided = np.zeros((grad_shape[0], 2 * int(np.prod(grad_shape[1:]))))[:, ::2].reshape(grad_shape[0], -1)
    add_matmul(strided, a, b.reshape(b_shape[0], -1))   # a non-contiguous gradient still gets the sum
    np.testing.assert_allclose(strided, product.reshape(strided.shape), rtol=1e-13)


def test_dense_two_passes_accumulate_into_the_weight_gradient():
    layer = f64(L.Dense(5, 3, rng=RNG(0)))
    rng = np.random.default_rng(1)
    x1, x2, dy1, dy2 = (rng.standard_normal(s) for s in ((4, 5), (6, 5), (4, 3), (6, 3)))
    layer.forward(x1)
    layer.backward(dy1)
    layer.forward(x2)
    layer.backward(dy2)
    np.testing.assert_allclose(layer.grads["weight"], dy1.T @ x1 + dy2.T @ x2, rtol=1e-13)
    layer.zero_grad()
    layer.forward(x2)
    layer.backward(dy2)
    np.testing.assert_allclose(layer.grads["weight"], dy2.T @ x2, rtol=1e-13)


@pytest.mark.parametrize("alpha", [0.0, 0.2, 1.0, 1.5])
def test_leakyrelu_matches_its_definition_for_any_slope(alpha):
    x = np.array([-2.0, -0.5, 0.0, 0.5, 3.0])
    np.testing.assert_array_equal(L.leakyrelu(x, alpha), np.where(x > 0, x, alpha * x))
    layer = f64(L.LeakyReLU(alpha))
    layer.forward(x.reshape(1, -1))
    dy = np.arange(1.0, 6.0).reshape(1, -1)
    np.testing.assert_allclose(layer.backward(dy), np.where(x > 0, dy, alpha * dy))


def test_adam_in_place_update_matches_the_formula_and_saves_only_its_moments():
    layer = f64(L.Dense(3, 2, rng=RNG(0)))
    opt = Adam(layer, lr=0.01, betas=(0.5, 0.9), eps=1e-8)
    w = layer.params["weight"].copy()
    m, v = np.zeros_like(w), np.zeros_like(w)
    rng = np.random.default_rng(0)
    for t in (1, 2, 3):
        g = rng.standard_normal(w.shape)
        layer.grads["weight"][...] = g
        layer.grads["bias"][...] = 0
        opt.step()
        m, v = 0.5 * m + 0.5 * g, 0.9 * v + 0.1 * g * g
        w = w - 0.01 * (m / (1 - 0.5 ** t)) / (np.sqrt(v / (1 - 0.9 ** t)) + 1e-8)
        np.testing.assert_allclose(layer.params["weight"], w, rtol=1e-13)
    assert sorted(opt.state_dict()) == ["state.bias.exp_avg", "state.bias.exp_avg_sq",
                                        "state.weight.exp_avg", "state.weight.exp_avg_sq", "t"]
