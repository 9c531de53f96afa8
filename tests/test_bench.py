"""The benchmark command: smoke runs on tiny steps, no timing assertions. (That the fast
paths compute the plain maths is tested with what they serve: test_layers.py, test_conv.py,
test_losses_optim.py.)"""
import json
import sys
import textwrap

import numpy as np
import pytest

from scratchgan import bench

# -- the bench command --------------------------------------------------------------------


@pytest.mark.parametrize("workload", bench.WORKLOADS)
def test_run_benchmark_smoke(workload):
    r = bench.run_benchmark(workload, "cpu", batch=4, steps=2, warmup=1)
    assert (r["workload"], r["device"], r["batch"], r["steps"], r["warmup"]) == (workload, "cpu", 4, 2, 1)
    assert 0 < r["min_ms"] <= r["median_ms"] and r["mean_ms"] > 0
    assert r["images_per_s"] == pytest.approx(4 / (r["median_ms"] / 1e3), rel=1e-2)
    assert r["gflop_per_step"] == pytest.approx(bench.SPEC_GFLOP[workload] * 4 / bench.SPEC_BATCH[workload], rel=1e-3)
    # gflop_per_s is rounded to 2 decimals: on a loaded machine a tiny step's figure is ~0.3
    assert r["gflop_per_s"] == pytest.approx(r["gflop_per_step"] / (r["median_ms"] / 1e3), rel=1e-2, abs=0.005)
    assert r["peak_memory_mib"] > 0 and r["memory_kind"].startswith("rss")
    assert r["spec_conditions"] is False and r["dtype"] == "float32" and r["im2col"] == "loops"
    assert r["fused_kernels"] is False                  # NumPy has none


def test_benchmark_records_a_forced_im2col_method(monkeypatch):
    monkeypatch.setenv("SCRATCHGAN_IM2COL", "gather")
    assert bench.run_benchmark("dcgan", "cpu", batch=2, steps=1, warmup=0)["im2col"] == "gather"


@pytest.mark.gpu
def test_run_benchmark_on_the_gpu_synchronizes_and_reports_pool_bytes(cupy, monkeypatch):
    monkeypatch.delenv("SCRATCHGAN_FUSED", raising=False)
    monkeypatch.delenv("SCRATCHGAN_IM2COL", raising=False)
    r = bench.run_benchmark("dcgan", "gpu", batch=4, steps=2, warmup=1)
    assert r["device"] == "gpu" and 0 < r["min_ms"] <= r["median_ms"]
    assert r["im2col"] == "gather" and r["fused_kernels"] is True
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
    assert "fused_kernels" not in out                       # the GPU's switches, shown for the GPU only
    gpu_record = {**json.loads(json.dumps(bench.run_benchmark("mlp", "cpu", batch=2, steps=1, warmup=0))),
                  "device": "gpu", "im2col": "gather", "fused_kernels": True}
    assert "im2col=gather fused_kernels=on" in bench._format("ours", gpu_record)
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


# -- precision: strict float32 or TF32 tensor cores, the same for both sides ---------------
def test_precision_is_recorded_and_tf32_is_refused_on_the_cpu(capsys):
    assert bench.run_benchmark("mlp", "cpu", batch=4, steps=1, warmup=0)["precision"] == "strict"
    with pytest.raises(bench.BenchError, match="tf32 is a GPU mode"):
        bench.run_benchmark("mlp", "cpu", batch=4, steps=1, warmup=0, precision="tf32")
    with pytest.raises(bench.BenchError, match="unknown precision 'fp16'"):
        bench.run_benchmark("mlp", "cpu", batch=4, steps=1, warmup=0, precision="fp16")
    with pytest.raises(bench.BenchError, match="tf32 is a GPU mode"):   # before any PyTorch run
        bench.compare_with_torch(["mlp"], "cpu", sys.executable, "never-run.py", precision="tf32")
    assert bench.main(["--workload", "mlp", "--precision", "tf32"]) == 2
    assert "tf32 is a GPU mode" in capsys.readouterr().err


def test_compare_with_torch_reports_the_precision_of_both_sides(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "log.txt"))
    assert bench.main(["--workload", "mlp", "--batch", "4", "--steps", "1", "--warmup", "0", "--rounds", "1",
                       "--compare-torch", sys.executable, "--torch-reference", str(fake_reference(tmp_path)),
                       "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_kind = {r["kind"]: r for r in records}
    assert by_kind["ours"]["precision"] == by_kind["torch"]["precision"] == "strict"
    assert by_kind["ratio"]["precision"] == by_kind["summary"]["precision"] == "strict"


@pytest.mark.parametrize("precision,expected", [("strict", False), ("tf32", True)])
def test_the_pytorch_side_sets_its_tf32_switches(tmp_path, precision, expected):
    """With PyTorch installed, the reference runs with cuBLAS's and cuDNN's TF32 switches as asked
    (read back after the run); the device is only named here, so the CPU build is enough."""
    pytest.importorskip("torch")
    probe = tmp_path / "torch_reference.py"
    probe.write_text(textwrap.dedent("""
        import torch
        def mlp(dev): pass
        def bench(name, make, dev, steps):
            return dict(workload=name, device=dev, batch=200, median_ms=1.0, min_ms=1.0,
                        seen=[torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32])
    """))
    r = bench.run_torch_reference(sys.executable, probe, "mlp", "gpu", steps=1, precision=precision)
    assert r["device"] == "cuda" and r["precision"] == precision
    assert r["seen"] == [expected, expected] and r["tf32"] == {"cuda_matmul": expected, "cudnn": expected}


@pytest.mark.gpu
@pytest.mark.parametrize("precision", bench.PRECISIONS)
def test_gpu_precision_sets_cupys_float32_compute_type(cupy, precision):
    from cupy._core import _routines_linalg as linalg
    r = bench.run_benchmark("mlp", "gpu", batch=4, steps=1, warmup=0, precision=precision)
    assert r["precision"] == precision
    assert linalg.get_compute_type(np.float32) == bench.gpu_compute_type(linalg, precision) == (7 if precision == "tf32" else 1)
    bench.set_gpu_precision("strict")
