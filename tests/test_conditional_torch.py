"""The cdcgan and acgan recipes (plain and -plus) against their PyTorch reference (demos/torch_reference/conditional.py).

The same weights in both (scratchgan's, copied into torch by registration order, shapes checked), the
same batch, labels, noise and fake labels: one training step of scratchgan's trainer and of the
reference's ``train_step`` in float64 must give the same losses, the same gradients of every
parameter of G and D, the same BatchNorm running statistics and the same weights after the Adam
steps. This is the proof that the two scripts train identical models the same way.

Skipped where torch is missing.
"""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.slow   # importing torch and two float64 training steps: about 10 s

from scratchgan import backend  # noqa: E402
from scratchgan.gan import GANTrainer, get_recipe  # noqa: E402

REFERENCE = Path(__file__).resolve().parents[1] / "demos" / "torch_reference" / "conditional.py"
MAX_REL_ERROR = 1e-9


def reference_module():
    spec = importlib.util.spec_from_file_location("torch_conditional", REFERENCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rel_error(ours, theirs):
    ours, theirs = np.asarray(ours, dtype=np.float64), theirs.detach().numpy()
    assert ours.shape == theirs.shape
    return float(np.abs(ours - theirs).max() / max(np.abs(theirs).max(), 1e-300))


def pairs(model, module):
    """(name, scratchgan layer, key, torch parameter) in registration order, shapes checked."""
    mine, theirs = model.named_parameters(), list(module.named_parameters())
    assert len(mine) == len(theirs)
    for (name, layer, key), (torch_name, param) in zip(mine, theirs):
        assert tuple(layer.params[key].shape) == tuple(param.shape), (name, torch_name)
    return [(name, layer, key, param) for (name, layer, key), (_, param) in zip(mine, theirs)]


def buffers(model, module):
    mine = [(layer, key) for _, layer in model.named_layers() for key in layer.buffers]
    theirs = list(module.named_buffers())
    assert len(mine) == len(theirs)
    return [(layer, key, buf) for (layer, key), (_, buf) in zip(mine, theirs)]


def copy_weights(model, module):
    with torch.no_grad():
        for _, layer, key, param in pairs(model, module):
            param.copy_(torch.from_numpy(np.array(layer.params[key])))


@pytest.mark.parametrize("recipe", ["cdcgan", "acgan", "cdcgan-plus", "acgan-plus"])
def test_one_training_step_matches_pytorch_in_float64(recipe):
    ref = reference_module()
    backend.set_default_dtype(np.float64)
    torch.set_default_dtype(torch.float64)
    try:
        backend.manual_seed(0)
        torch.manual_seed(0)
        options = get_recipe(recipe).options(ngf=8, ndf=8, batch_size=6)
        setup = get_recipe(recipe).setup(options, (1, 28, 28))
        trainer = GANTrainer.from_setup(setup)
        G_t, D_t = ref.generator(ngf=8), ref.discriminator(recipe, ndf=8)
        ref.initialise(G_t)
        ref.initialise(D_t)
        copy_weights(setup.G, G_t)
        copy_weights(setup.D, D_t)
        opt_g_t, opt_d_t = ref.optimizers(G_t, D_t, lr=ref.learning_rate(recipe))
        assert setup.opt_g.lr == setup.opt_d.lr == ref.learning_rate(recipe)

        rng = np.random.default_rng(1)
        real = rng.uniform(-1, 1, (6, 1, 28, 28))
        labels = np.array([3, 3, 0, 9, 3, 5])                  # repeated labels on purpose
        z = rng.standard_normal((6, 100, 1, 1))
        fake_labels = np.array([1, 7, 7, 2, 0, 7])

        fake = setup.G.forward((z, fake_labels), train=True)
        d_loss, *_ = trainer.discriminator_step(real, fake, labels, fake_labels)
        g_loss = trainer.generator_step(fake, fake_labels)
        t_d, t_g = ref.train_step(G_t, D_t, opt_g_t, opt_d_t, torch.from_numpy(real), torch.from_numpy(labels),
                                  torch.from_numpy(z), torch.from_numpy(fake_labels),
                                  fake_aux_weight=ref.fake_class_weight(recipe))

        assert abs(float(d_loss) - t_d) <= MAX_REL_ERROR * abs(t_d)
        assert abs(float(g_loss) - t_g) <= MAX_REL_ERROR * abs(t_g)
        for model, module in ((setup.G, G_t), (setup.D, D_t)):
            for name, layer, key, param in pairs(model, module):
                assert rel_error(layer.grads[key], param.grad) <= MAX_REL_ERROR, f"gradient of {name}"
                assert rel_error(layer.params[key], param) <= MAX_REL_ERROR, f"{name} after the step"
            for layer, key, buf in buffers(model, module):
                if buf.dtype.is_floating_point:
                    assert rel_error(layer.buffers[key], buf) <= MAX_REL_ERROR, key
    finally:
        backend.set_default_dtype(np.float32)
        torch.set_default_dtype(torch.float32)


def test_the_weight_average_matches_pytorch_in_float64():
    """scratchgan's GeneratorEMA and the reference's WeightAverage, fed the same sequence of G's weights and
    BatchNorm statistics, hold the same average; re-estimated on the same noise, the same statistics and samples."""
    from scratchgan.gan.averaging import REESTIMATE_SEED, GeneratorEMA
    ref = reference_module()
    backend.set_default_dtype(np.float64)
    torch.set_default_dtype(torch.float64)
    try:
        backend.manual_seed(0)
        setup = get_recipe("cdcgan-plus").setup(get_recipe("cdcgan-plus").options(ngf=8), (1, 28, 28))
        G, G_t = setup.G, ref.generator(ngf=8)
        copy_weights(G, G_t)
        ema = GeneratorEMA(G, beta=0.9, num_classes=10, bn_batches=ref.REESTIMATE_BATCHES,
                           bn_batch_size=ref.REESTIMATE_BATCH)
        average = ref.WeightAverage(G_t, beta=0.9)
        rng = np.random.default_rng(2)
        for _ in range(5):                      # G moves (weights and BatchNorm statistics); both average it
            for _, layer, key, param in pairs(G, G_t):
                layer.params[key] = layer.params[key] + 0.05 * rng.standard_normal(layer.params[key].shape)
            copy_weights(G, G_t)
            z, y = rng.standard_normal((8, 100, 1, 1)), rng.integers(0, 10, 8)
            G.forward((z, y), train=True, keep_cache=False)
            G_t.train()(torch.from_numpy(z), torch.from_numpy(y))
            ema.update(G)
            average.update(G_t)
        for name, layer, key, param in pairs(ema.average, average.model):
            assert rel_error(layer.params[key], param) <= MAX_REL_ERROR, name
        for layer, key, buf in buffers(ema.average, average.model):
            if buf.dtype.is_floating_point:
                assert rel_error(layer.buffers[key], buf) <= MAX_REL_ERROR, key
        ours = ema.averaged_generator(G)
        draws = backend.RNG(REESTIMATE_SEED)         # scratchgan's re-estimation noise, given to the reference
        theirs = average.sampler(noise=lambda n: torch.from_numpy(draws.normal((n, 100, 1, 1), dtype=np.float64)))
        for layer, key, buf in buffers(ours, theirs):
            if buf.dtype.is_floating_point:
                assert rel_error(layer.buffers[key], buf) <= MAX_REL_ERROR, key
        z, y = rng.standard_normal((10, 100, 1, 1)), np.arange(10)
        with torch.no_grad():
            expected = theirs(torch.from_numpy(z), torch.from_numpy(y))
        assert rel_error(ours.forward((z, y), train=False, keep_cache=False), expected) <= MAX_REL_ERROR
    finally:
        backend.set_default_dtype(np.float32)
        torch.set_default_dtype(torch.float32)
