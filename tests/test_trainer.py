"""The GAN trainer: step schedule, targets, gradients through G and D, history, divergence."""
import numpy as np
import pytest

from scratchgan import SGD, Chain, Dense, Softmax, losses
from scratchgan.backend import RNG
from scratchgan.gan import DivergenceError, GANConfig, GANTrainer, d_targets, g_loss, get_head
from scratchgan.gradcheck import numeric_gradient, rel_error


def tiny_models(dtype=np.float64, head="softmax"):
    rng = RNG(3)
    G = Chain(Dense(4, 6, "tanh", rng=rng), Dense(6, 5, "sigmoid", rng=rng)).to(dtype=dtype)
    last = [Dense(7, 2, rng=rng), Softmax()] if head == "softmax" else [Dense(7, 1, rng=rng)]
    D = Chain(Dense(5, 7, "tanh", rng=rng), *last).to(dtype=dtype)
    return G, D


def make_trainer(k=1, lr=0.1, head="softmax", dtype=np.float64, **cfg):
    G, D = tiny_models(dtype, head)
    config = GANConfig(z_dim=4, batch_size=8, k=k, seed=5, n_progress=3, **cfg)
    return GANTrainer(G, D, SGD(G, lr=lr), SGD(D, lr=lr), get_head(head), config)


def real_batch(n=8, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).uniform(0.1, 0.9, (n, 5)).astype(dtype)


def snapshot(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


def same(a, b):
    return all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_k_discriminator_steps_per_generator_step(k):
    trainer = make_trainer(k=k)
    g_updates = []
    for step in range(1, 8):
        before = snapshot(trainer.G)
        trainer.train_step(real_batch(seed=step))
        g_updates.append(not same(before, snapshot(trainer.G)))
    assert g_updates == [step % k == 0 for step in range(1, 8)]
    assert trainer.d_steps == 7 and trainer.g_steps == 7 // k
    g = np.array(trainer.history["g_loss"])
    assert np.isnan(g).tolist() == [step % k != 0 for step in range(1, 8)]
    assert all(len(v) == 7 for v in trainer.history.values())


def test_generator_step_leaves_discriminator_unchanged():
    trainer = make_trainer()
    trainer.train_step(real_batch())
    fake = trainer.G.forward(trainer.sample_noise(8), train=True)
    d_params, d_grads = snapshot(trainer.D), {n: l.grads[k].copy() for n, l, k in trainer.D.named_parameters()}
    g_before = snapshot(trainer.G)
    trainer.generator_step(fake)
    assert same(d_params, snapshot(trainer.D))
    assert all(np.array_equal(d_grads[n], l.grads[k]) for n, l, k in trainer.D.named_parameters())
    assert not same(g_before, snapshot(trainer.G))
    assert all(layer.requires_grad for _, layer in trainer.D.named_layers())


@pytest.mark.parametrize("head", ["softmax", "logit"])
@pytest.mark.parametrize("kind", ["non-saturating", "minimax"])
def test_generator_gradient_through_discriminator_matches_finite_differences(head, kind):
    trainer = make_trainer(lr=0.0, head=head, g_loss=kind)  # lr 0: the step leaves grads readable
    z = trainer.sample_noise(6)
    fake = trainer.G.forward(z, train=True)
    trainer.generator_step(fake)
    for name, layer, key in trainer.G.named_parameters():
        def loss():  # numeric_gradient perturbs the parameter in place
            out = trainer.D.forward(trainer.G.forward(z, keep_cache=False), keep_cache=False)
            return g_loss(trainer.head, out, kind)[0]

        numeric = numeric_gradient(loss, layer.params[key])
        assert rel_error(layer.grads[key], numeric) < 1e-7, name


@pytest.mark.parametrize("joint", [True, False])
@pytest.mark.parametrize("smoothing,flip", [(0.0, 0.0), (0.1, 0.0), (0.1, 0.3)])
def test_discriminator_gradient_matches_finite_differences(smoothing, flip, joint):
    trainer = make_trainer(lr=0.0, label_smoothing=smoothing, flip_prob=flip)
    trainer.joint_d_batch = joint
    real = real_batch()
    fake = trainer.G.forward(trainer.sample_noise(8), keep_cache=False)
    state = trainer.rng.state_dict()
    trainer.discriminator_step(real, fake)
    for name, layer, key in trainer.D.named_parameters():
        def loss():
            trainer.rng.load_state_dict(state)  # the same flipped targets as the step drew
            total = 0.0
            for batch, is_real in ((real, True), (fake, False)):
                t = d_targets(8, is_real, np, np.float64, smoothing, flip, trainer.rng)
                total += trainer.head.bce(trainer.D.forward(batch, keep_cache=False), t)[0]
            return total

        numeric = numeric_gradient(loss, layer.params[key])
        assert rel_error(layer.grads[key], numeric) < 1e-7, name


@pytest.mark.parametrize("head", ["softmax", "logit"])
def test_joint_discriminator_pass_equals_two_passes(head):
    """Real and fake through D as one batch: the same loss, P(real) and update as two passes."""
    results = []
    for joint in (True, False):
        trainer = make_trainer(head=head, label_smoothing=0.1, flip_prob=0.3)
        assert trainer.joint_d_batch  # no BatchNorm in D
        trainer.joint_d_batch = joint
        real = real_batch()
        fake = trainer.G.forward(trainer.sample_noise(8), keep_cache=False)
        loss, p_real, p_fake = trainer.discriminator_step(real, fake)
        results.append((loss, p_real, p_fake, snapshot(trainer.D)))
    (loss_j, pr_j, pf_j, d_j), (loss_s, pr_s, pf_s, d_s) = results
    assert np.isclose(loss_j, loss_s, rtol=1e-13, atol=0)
    assert np.allclose(pr_j, pr_s, rtol=1e-13) and np.allclose(pf_j, pf_s, rtol=1e-13)
    assert pr_j.shape == pf_j.shape == (8,)
    assert all(np.allclose(d_j[k], d_s[k], rtol=1e-12, atol=1e-15) for k in d_j)


def test_a_discriminator_with_batchnorm_runs_real_and_fake_separately():
    from scratchgan import BatchNorm
    G, _ = tiny_models()
    D = Chain(Dense(5, 7), BatchNorm(7), Dense(7, 1)).to(dtype=np.float64)
    config = GANConfig(z_dim=4, batch_size=8, seed=5, n_progress=3)
    trainer = GANTrainer(G, D, SGD(G, lr=0.1), SGD(D, lr=0.1), get_head("logit"), config)
    assert not trainer.joint_d_batch
    real = real_batch()
    fake = trainer.G.forward(trainer.sample_noise(8), keep_cache=False)
    mean_real, mean_fake = (D[0].forward(x, keep_cache=False).mean(axis=0) for x in (real, fake))
    trainer.discriminator_step(real, fake)
    # two running-statistics updates (momentum 0.1), one per batch, each with its own mean
    expected = 0.9 * (0.1 * mean_real) + 0.1 * mean_fake
    assert np.allclose(D[1].buffers["running_mean"], expected, rtol=1e-12)


def test_label_smoothing_is_one_sided():
    real = d_targets(5, True, np, np.float32, smoothing=0.1)
    fake = d_targets(5, False, np, np.float32, smoothing=0.1)
    assert real.dtype == np.float32 and np.allclose(real, 0.9) and np.all(fake == 0)


def test_label_flipping_swaps_targets_at_the_given_rate():
    n = 200_000
    real = d_targets(n, True, np, np.float64, smoothing=0.1, flip_prob=0.2, rng=RNG(1))
    fake = d_targets(n, False, np, np.float64, smoothing=0.1, flip_prob=0.2, rng=RNG(2))
    assert set(np.unique(real)) == {0.0, 0.9} and set(np.unique(fake)) == {0.0, 0.9}
    # binomial standard deviation of the rate is sqrt(0.2 * 0.8 / n) ~ 0.0009
    assert abs(np.mean(real == 0.0) - 0.2) < 0.005
    assert abs(np.mean(fake == 0.9) - 0.2) < 0.005


def test_generator_losses_have_the_textbook_gradients():
    logits = np.array([[-3.0], [0.0], [2.0]])
    p = 1 / (1 + np.exp(-logits))
    head = get_head("logit")
    ns_value, ns_grad = g_loss(head, logits, "non-saturating")
    mm_value, mm_grad = g_loss(head, logits, "minimax")
    assert np.isclose(ns_value, -np.mean(np.log(p)))
    assert np.isclose(mm_value, np.mean(np.log(1 - p)))
    assert np.allclose(ns_grad, (p - 1) / 3)   # strong when D rejects the fake (p -> 0)
    assert np.allclose(mm_grad, -p / 3)        # vanishes when D rejects the fake: saturation
    with pytest.raises(ValueError, match="unknown generator loss"):
        g_loss(head, logits, "wasserstein")


def test_history_records_probabilities_and_accuracies():
    trainer = make_trainer()
    trainer.train_step(real_batch())
    h = {k: v[0] for k, v in trainer.history.items()}
    assert 0 < h["d_real"] < 1 and 0 < h["d_fake"] < 1
    assert h["acc_real"] in np.arange(9) / 8 and h["acc_fake"] in np.arange(9) / 8
    assert np.isfinite(h["d_loss"]) and np.isfinite(h["g_loss"])


def test_history_is_flushed_in_batches_on_request():
    trainer = make_trainer()
    trainer.sync_every = 3
    trainer.train_step(real_batch())
    trainer.train_step(real_batch())
    assert len(trainer.history["d_loss"]) == 0
    trainer.flush()
    assert len(trainer.history["d_loss"]) == 2


def test_non_finite_loss_raises_divergence_error():
    trainer = make_trainer()
    trainer.train_step(real_batch())
    trainer.D[0].params["weight"][0, 0] = np.nan
    with pytest.raises(DivergenceError, match="non-finite loss at discriminator step 2"):
        trainer.train_step(real_batch())
    assert len(trainer.history["d_loss"]) == 1  # the bad step is not recorded


def test_non_finite_generator_loss_is_caught_too():
    trainer = make_trainer()
    trainer.G[1].params["bias"][0] = np.inf  # G outputs stay finite (sigmoid) but ...
    trainer.G[0].params["weight"][0, 0] = np.nan  # ... NaN reaches D through G
    with pytest.raises(DivergenceError):
        trainer.train_step(real_batch())


def test_sampling_uses_eval_mode_and_fixed_noise_is_reproducible():
    a, b = make_trainer(), make_trainer()
    assert np.array_equal(a.fixed_noise, b.fixed_noise) and a.fixed_noise.shape == (3, 4)
    assert np.array_equal(a.sample(noise=a.fixed_noise), b.sample(noise=b.fixed_noise))


def test_float32_training_stays_float32():
    trainer = make_trainer(dtype=np.float32)
    trainer.train_step(real_batch(dtype=np.float32))
    for model in (trainer.G, trainer.D):
        for _, layer, key in model.named_parameters():
            assert layer.params[key].dtype == np.float32 and layer.grads[key].dtype == np.float32


def test_k_must_be_positive():
    with pytest.raises(ValueError, match="k"):
        make_trainer(k=0)


def test_loss_value_matches_the_tutorial_formula():
    """D loss = -mean log D(x) - mean log(1 - D(G(z))) for the softmax head without smoothing."""
    trainer = make_trainer(lr=0.0)
    real = real_batch()
    fake = trainer.G.forward(trainer.sample_noise(8), keep_cache=False)
    p_real = trainer.D.forward(real, keep_cache=False)[:, 0]
    p_fake = trainer.D.forward(fake, keep_cache=False)[:, 0]
    d_loss, _, _ = trainer.discriminator_step(real, fake)
    assert np.isclose(d_loss, -np.mean(np.log(p_real)) - np.mean(np.log(1 - p_fake)))
    ref, _ = losses.binary_cross_entropy(p_real, 1.0)
    assert np.isclose(ref, -np.mean(np.log(p_real)))
