"""SRResNet / SRGAN: image quality measures, models, the content losses' gradients, the PyTorch
reference's equivalence in float64, runs, upscale and evaluate."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from scratchgan import backend
from scratchgan.cli import main
from scratchgan.evaluation.image_quality import bicubic_upscale, block_mean, gaussian_window, psnr, ssim
from scratchgan.gan.srgan import (FeatureMSE, PixelMSE, SuperResolutionTrainer, downscale, sr_discriminator,
                                  srresnet_generator, upscale_images)
from scratchgan.gradcheck import directional_error
from scratchgan.optim import Adam

from realdata import MNIST_DIR, needs_mnist

ROOT = Path(__file__).resolve().parents[1]
rng = np.random.default_rng(0)


# -- PSNR, SSIM, block means, bicubic --------------------------------------------------------
def test_ssim_equals_scikit_image():
    """A known value: skimage 0.24.0's structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1.0) gives 0.800462052956239 for this pair (Wang et al.'s settings)."""
    r = np.random.default_rng(0)
    a = r.random((28, 28))
    b = np.clip(a + 0.2 * r.standard_normal((28, 28)), 0, 1)
    assert float(ssim(a[None], b[None])[0]) == pytest.approx(0.800462052956239, rel=1e-12)
    skimage = pytest.importorskip("skimage.metrics")
    for c in (0.05, 0.3):
        y = np.clip(a + c * r.standard_normal(a.shape), 0, 1)
        expected = skimage.structural_similarity(a, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                                 data_range=1.0)
        assert float(ssim(a[None], y[None])[0]) == pytest.approx(expected, rel=1e-12)


def test_ssim_and_psnr_basics():
    x = rng.random((3, 1, 20, 20))
    np.testing.assert_allclose(ssim(x, x), 1.0)
    assert np.isinf(psnr(x, x)).all()
    y = x + 0.1
    np.testing.assert_allclose(psnr(y, x), 20.0)                       # MSE 0.01 -> 20 dB
    assert (ssim(x, 1 - x) < 0.5).all()
    assert gaussian_window().sum() == pytest.approx(1) and len(gaussian_window()) == 11
    with pytest.raises(ValueError, match="smaller than the 11-pixel window"):
        ssim(x[:, :, :8, :8], x[:, :, :8, :8])
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(x, x[:2])


def test_block_means_and_bicubic():
    x = rng.random((2, 1, 28, 28))
    low = block_mean(x, 4)
    assert low.shape == (2, 1, 7, 7) and low[0, 0, 1, 2] == pytest.approx(x[0, 0, 4:8, 8:12].mean())
    np.testing.assert_allclose(downscale(x), low)
    flat = np.full((1, 1, 7, 7), 0.3)
    np.testing.assert_allclose(bicubic_upscale(flat, 4), 0.3, atol=1e-6)
    assert bicubic_upscale(low, 4).shape == (2, 1, 28, 28)
    with pytest.raises(ValueError, match="not a multiple of 4"):
        block_mean(x[:, :, :27], 4)


# -- models and losses ---------------------------------------------------------------------------
def test_model_shapes():
    backend.manual_seed(0)
    G = srresnet_generator(n_blocks=2, channels=8)
    low = np.tanh(rng.standard_normal((3, 1, 7, 7))).astype(np.float32)
    high = G.forward(low, keep_cache=False)
    assert high.shape == (3, 1, 28, 28) and np.abs(high).max() <= 1
    assert sr_discriminator(4).forward(high, keep_cache=False).shape == (3, 1)
    names = [name for name, _, _ in G.named_parameters()]
    assert "2.body.0.body.0.weight" in names and "1.weight" in names   # residual blocks, PReLU slopes


@pytest.mark.parametrize("layer", ["conv1", "conv2", "features"])
def test_feature_content_loss_gradient(layer):
    """d/dSR of the MSE between the classifier's features of SR and HR, through x -> (x + 1) / 2."""
    content = FeatureMSE(layer)
    content.net.to(dtype=np.float64)
    sr, hr = (np.tanh(rng.standard_normal((2, 1, 28, 28))) for _ in range(2))
    _, grad = content(sr, hr)
    assert directional_error(lambda: np.asarray(content(sr, hr)[0]), sr, grad, n_directions=4, h=1e-5) < 1e-6
    assert not any(lyr.grads[k].any() for _, lyr, k in content.net.named_parameters()), "the classifier stays frozen"


def test_srgan_step_updates_g_and_d_and_records_the_adversarial_terms():
    backend.manual_seed(0)
    G, D = srresnet_generator(1, 4), sr_discriminator(4)
    trainer = SuperResolutionTrainer(G, Adam(G), PixelMSE(), D, Adam(D), adversarial_weight=1e-3)
    high = np.tanh(rng.standard_normal((4, 1, 28, 28))).astype(np.float32)
    before_g, before_d = G.state_dict(), D.state_dict()
    trainer.train_step((downscale(high), high))
    assert any(not np.array_equal(v, before_g[k]) for k, v in G.state_dict().items())
    assert any(not np.array_equal(v, before_d[k]) for k, v in D.state_dict().items())
    h = {k: v[-1] for k, v in trainer.history.items()}
    assert h["g_loss"] == pytest.approx(h["content"] + 1e-3 * h["adversarial"], rel=1e-5)
    assert 0 < h["d_real"] < 1 and 0 < h["d_fake"] < 1 and h["psnr"] > 0


# -- the PyTorch reference -------------------------------------------------------------------------
def load_reference():
    spec = importlib.util.spec_from_file_location("srresnet_torch", ROOT / "references" / "srresnet_torch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_one_training_step_equals_pytorch_in_float64():
    """The reference script's torch SRResNet and its train_step against the srresnet recipe's step
    (scratchgan's layers, PixelMSE, Adam): loss, every parameter and BatchNorm buffer after two steps."""
    torch = pytest.importorskip("torch")
    ref = load_reference()
    from scratchgan.gan.recipes import get_recipe
    recipe = get_recipe("srresnet")
    o = recipe.options(n_blocks=2, width=8)
    backend.manual_seed(0)
    G = recipe.setup(o, (1, 28, 28)).G.to(dtype=np.float64)
    net = ref.from_scratchgan(ref.torch_srresnet(2, 8), G, torch.float64)
    trainer = SuperResolutionTrainer(G, Adam(G, lr=o["lr"], betas=(o["beta1"], 0.999)), PixelMSE())
    optimizer = torch.optim.Adam(net.parameters(), lr=o["lr"], betas=(o["beta1"], 0.999), eps=1e-8)
    for step in range(2):
        high = np.tanh(np.random.default_rng(step).standard_normal((3, 1, 28, 28)))
        trainer.train_step((downscale(high), high))
        loss = ref.train_step(net, optimizer, torch.tensor(downscale(high)), torch.tensor(high))
        assert trainer.history["content"][-1] == pytest.approx(float(loss.detach()), rel=1e-6)  # history is float32
    theirs = ref.to_scratchgan_state(net)
    for key, value in G.state_dict().items():
        scale = max(np.abs(theirs[key]).max(), 1e-300)
        assert np.abs(value - theirs[key]).max() / scale < 1e-9, key


# -- runs and commands ------------------------------------------------------------------------------
TINY = ["--width", "4", "--n-blocks", "1", "--batch-size", "16"]


def tiny_digits(tmp_path, n=64):
    from scratchgan.data import load_dataset, write_idx
    images, labels = load_dataset("mnist", "train", data_dir=MNIST_DIR)
    folder = tmp_path / "mnist"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte", images[:n])
    write_idx(folder / "train-labels-idx1-ubyte", labels[:n])
    test, test_labels = load_dataset("mnist", "test", data_dir=MNIST_DIR)
    write_idx(folder / "t10k-images-idx3-ubyte", test[:200])
    write_idx(folder / "t10k-labels-idx1-ubyte", test_labels[:200])
    return folder


@needs_mnist
@pytest.mark.slow
def test_srresnet_then_srgan_runs_upscale_and_evaluate(tmp_path, capsys):
    data = str(tiny_digits(tmp_path))
    sr = tmp_path / "srresnet"
    assert main(["train", "srresnet", "--data-dir", data, "--out", str(sr), "--epochs", "2", *TINY,
                 "--eval-samples", "100", "--quiet"]) == 0
    for name in ("checkpoint.npz", "history.csv", "loss.png", "progress.png", "progress.gif", "quality.csv",
                 "quality.png", "evaluation.json", "summary.json"):
        assert (sr / name).stat().st_size > 0, name
    row = json.loads((sr / "evaluation.json").read_text())
    assert row["n"] == 100 and row["psnr"] > 5 and 0 <= row["accuracy"] <= 1
    gan = tmp_path / "srgan"
    assert main(["train", "srgan", "--data-dir", data, "--out", str(gan), "--epochs", "1", *TINY, "--init-from",
                 str(sr / "checkpoint.npz"), "--content-layer", "conv1", "--no-evaluate", "--quiet"]) == 0
    assert (gan / "d_outputs.png").is_file()
    np.save(tmp_path / "low.npy", rng.random((5, 7, 7)).astype(np.float32))
    assert main(["upscale", str(gan / "checkpoint.npz"), str(tmp_path / "low.npy"), "-o", str(tmp_path / "up.npy")]) == 0
    up = np.load(tmp_path / "up.npy")
    assert up.shape == (5, 28, 28) and 0 <= up.min() and up.max() <= 1
    assert main(["upscale", str(sr / "checkpoint.npz"), str(tmp_path / "low.npy"), "-o", str(tmp_path / "up.png")]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(sr / "checkpoint.npz"), "--data-dir", data, "--n", "100"]) == 0
    out = capsys.readouterr().out
    assert "| bicubic |" in out and "| srresnet |" in out


@pytest.mark.parametrize("args, message", [
    (["low.npy", "-o", "out.txt"], "-o must end in .npy or .png"),
    (["wrong.npy", "-o", "out.npy"], r"\(N, 7, 7\) or \(N, 1, 7, 7\)"),
    (["low.png", "-o", "out.npy"], "INPUT must be an .npy")])
def test_upscale_errors_are_one_line(tmp_path, capsys, monkeypatch, args, message):
    from scratchgan.gan.checkpoint import FORMAT_VERSION
    from scratchgan.gan.recipes import get_recipe
    o = get_recipe("srresnet").options(width=2, n_blocks=0)
    G = srresnet_generator(0, 2)
    np.savez(tmp_path / "c.npz", meta=np.array(json.dumps({"format": FORMAT_VERSION, "recipe": "srresnet", "options": o,
                                                           "image_shape": [1, 28, 28], "epoch": 1})),
             **{f"G/{k}": v for k, v in G.state_dict().items()})
    np.save(tmp_path / "low.npy", np.zeros((2, 7, 7), np.float32))
    np.save(tmp_path / "wrong.npy", np.zeros((2, 28, 28), np.float32))
    monkeypatch.chdir(tmp_path)
    assert main(["upscale", "c.npz", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and __import__("re").search(message, err[0]), err


def test_srgan_options_are_checked_before_any_work(tmp_path):
    from scratchgan.gan.recipes import get_recipe
    with pytest.raises(ValueError, match="option init_from must be the path of an srresnet checkpoint"):
        get_recipe("srgan").options(init_from=str(tmp_path / "missing.npz"))
    with pytest.raises(ValueError, match="option content_layer must be one of conv1, conv2, features"):
        get_recipe("srgan").options(content_layer="pool5")
    with pytest.raises(ValueError, match="upscale 7x7 to 28x28"):
        get_recipe("srresnet").setup(get_recipe("srresnet").options(), (1, 32, 32))


def test_upscale_images_in_eval_mode_is_deterministic():
    backend.manual_seed(0)
    G = srresnet_generator(1, 4)
    low = rng.random((3, 1, 7, 7)).astype(np.float32)
    np.testing.assert_array_equal(upscale_images(G, low), upscale_images(G, low))
