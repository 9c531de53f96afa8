"""DCGAN recipe: shapes at every size, BatchNorm-eval sampling, learning on a fixed batch."""
import numpy as np
import pytest

from scratchgan.backend import manual_seed
from scratchgan.gan.recipes import DCGAN_SIZES, get_recipe
from scratchgan.gan.trainer import GANTrainer


def setup(size, channels, **options):
    manual_seed(0)
    recipe = get_recipe("dcgan")
    return recipe.setup(recipe.options(**options), (channels, size, size))


@pytest.mark.parametrize("size", DCGAN_SIZES)
@pytest.mark.parametrize("channels", [1, 3])
def test_generator_and_discriminator_shapes(size, channels):
    s = setup(size, channels, ngf=8, ndf=8, z_dim=16)
    z = np.random.default_rng(0).standard_normal((2, 16, 1, 1)).astype(np.float32)
    fake = s.G.forward(z, train=False, keep_cache=False)
    assert fake.shape == (2, channels, size, size) and fake.dtype == np.float32
    assert np.abs(fake).max() <= 1
    assert s.D.forward(fake, train=False, keep_cache=False).shape == (2, 1, 1, 1)
    unit = s.to_unit(fake)
    assert unit.min() >= 0 and unit.max() <= 1


def test_dcgan28_matches_the_benchmark_spec():
    s = setup(28, 1)
    convs = [(type(l).__name__, l.params["weight"].shape, l.stride, l.padding)
             for l in s.G.layers + s.D.layers if "weight" in l.params and l.params["weight"].ndim == 4]
    assert convs == [("ConvTranspose2d", (100, 256, 7, 7), (1, 1), (0, 0)),
                     ("ConvTranspose2d", (256, 128, 4, 4), (2, 2), (1, 1)),
                     ("ConvTranspose2d", (128, 1, 4, 4), (2, 2), (1, 1)),
                     ("Conv2d", (64, 1, 4, 4), (2, 2), (1, 1)),
                     ("Conv2d", (128, 64, 4, 4), (2, 2), (1, 1)),
                     ("Conv2d", (1, 128, 7, 7), (1, 1), (0, 0))]
    assert all("bias" not in l.params for l in s.G.layers + s.D.layers if type(l).__name__.startswith("Conv"))
    assert s.G.num_params() == 1_781_504 and s.D.num_params() == 138_624
    assert s.opt_d.betas == (0.5, 0.999) and s.opt_d.lr == 2e-4 and s.config.batch_size == 128


def test_unsupported_size_is_refused():
    with pytest.raises(ValueError, match="28, 32, 64"):
        setup(48, 1)


def test_sampling_in_eval_mode_does_not_depend_on_the_rest_of_the_batch():
    s = setup(28, 1, ngf=8, ndf=8)
    trainer = GANTrainer(s.G, s.D, s.opt_g, s.opt_d, s.head, s.config)
    real = np.random.default_rng(1).uniform(-1, 1, (16, 1, 28, 28)).astype(np.float32)
    for _ in range(2):   # move the running statistics away from their initial values
        trainer.train_step(real)
    z = trainer.sample_noise(6)
    alone = trainer.sample(noise=z[:1])
    with_others = trainer.sample(noise=z)
    # equal up to float32 rounding (BLAS blocks a GEMM differently for other batch sizes) ...
    np.testing.assert_allclose(alone[0], with_others[0], rtol=0, atol=1e-6)
    # ... while with batch statistics the same z gives a different image in another batch
    train_mode = s.G.forward(z, train=True, keep_cache=False)
    assert np.abs(train_mode[0] - s.G.forward(z[:2], train=True, keep_cache=False)[0]).max() > 1e-3


def test_a_few_steps_reduce_d_loss_on_a_fixed_batch():
    s = setup(28, 1, ngf=8, ndf=8, lr=1e-3)
    trainer = GANTrainer(s.G, s.D, s.opt_g, s.opt_d, s.head, s.config)
    rng = np.random.default_rng(2)
    real = np.tanh(rng.standard_normal((32, 1, 28, 28))).astype(np.float32)
    fake = s.G.forward(trainer.sample_noise(32), train=False, keep_cache=False)

    def d_loss():
        # train mode, as in the step: 10 steps barely move BatchNorm's running statistics
        values = [s.head.bce(s.D.forward(x, train=True, keep_cache=False), t)[0] for x, t in ((real, 1.0), (fake, 0.0))]
        return float(sum(values))

    before = d_loss()
    for _ in range(10):
        trainer.discriminator_step(real, fake)
    assert d_loss() < 0.6 * before  # from log 4 = 1.39 at chance to about 0.75
