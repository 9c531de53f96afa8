"""The GAN trainer: step schedule, targets, gradients through G and D, history, divergence."""
import types

import numpy as np
import pytest

from scratchgan import SGD, BatchNorm, Chain, Dense, Dropout, Softmax, losses, manual_seed
from scratchgan.backend import RNG
from scratchgan.evaluation.metrics import discriminator_accuracy
from scratchgan.gan import (DivergenceError, GANConfig, GANTrainer, d_accuracy, d_correct, d_targets, g_loss,
                            get_head)
from scratchgan.gan.run import discriminator_accuracy as run_discriminator_accuracy
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
        loss, p_real, p_fake, _ = trainer.discriminator_step(real, fake)
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


def tied_discriminator(trainer):
    """Zero D's last Dense layer: its softmax then says P(real) = 0.5 exactly for every sample."""
    for key in ("weight", "bias"):
        trainer.D[1].params[key][...] = 0.0
    return trainer


def test_one_accuracy_rule_and_a_tie_counts_as_fake():
    p = np.array([0.2, 0.5, np.nextafter(np.float32(0.5), np.float32(1)), 0.9], dtype=np.float32)
    assert d_correct(p, real=True).tolist() == [False, False, True, True]
    assert d_correct(p, real=False).tolist() == [True, True, False, False]
    acc = d_accuracy(p, real=False)
    assert acc == 0.5 and acc.dtype == np.float32 and d_accuracy(p, True, np.float64).dtype == np.float64
    assert not d_correct(np.array([np.nan]), real=True)[0]

    # every user of the rule: P(real) = 0.5 is wrong on real samples and right on fakes
    trainer = tied_discriminator(make_trainer(lr=0.0))
    real = real_batch()
    p_real = trainer.head.prob_real(trainer.D.forward(real, train=False))
    assert np.all(p_real == 0.5)
    trainer.train_step(real)
    assert trainer.history["acc_real"] == [0.0] and trainer.history["acc_fake"] == [1.0]
    setup = types.SimpleNamespace(D=trainer.D, head=trainer.head)
    acc_real, acc_fake = run_discriminator_accuracy(trainer, setup, real_batch(16), batch_size=8)
    assert acc_real.tolist() == [0.0, 0.0] and acc_fake.tolist() == [1.0, 1.0]
    fake = trainer.sample(5)
    assert discriminator_accuracy(trainer.D, trainer.head, real, fake) == {"real": 0.0, "fake": 1.0,
                                                                           "overall": 5 / 13}


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


def trained_with_batchnorm_and_dropout_in_g(steps=3):
    manual_seed(0)  # G's dropout masks come from the global generator
    rng = RNG(4)
    G = Chain(Dense(4, 6, rng=rng), BatchNorm(6), Dropout(0.5), Dense(6, 5, "sigmoid", rng=rng)).to(dtype=np.float64)
    _, D = tiny_models()
    config = GANConfig(z_dim=4, batch_size=8, seed=5, n_progress=3)
    trainer = GANTrainer(G, D, SGD(G, lr=0.1), SGD(D, lr=0.1), get_head("softmax"), config)
    for step in range(steps):  # running statistics move away from their initial (0, 1)
        trainer.train_step(real_batch(seed=step))
    return trainer


def test_sampling_uses_eval_mode_and_fixed_noise_is_reproducible():
    a, b = trained_with_batchnorm_and_dropout_in_g(), trained_with_batchnorm_and_dropout_in_g()
    assert np.array_equal(a.fixed_noise, b.fixed_noise) and a.fixed_noise.shape == (3, 4)
    batchnorm = a.G[1]
    running = {k: v.copy() for k, v in batchnorm.buffers.items()}
    assert not np.allclose(running["running_mean"], 0)

    noise = a.sample_noise(7)
    samples = a.sample(noise=noise, batch_size=3)   # batches of 3, 3 and 1
    assert all(np.array_equal(running[k], batchnorm.buffers[k]) for k in running)  # statistics untouched
    eval_mode = a.G.forward(noise, train=False)     # running statistics, no dropout
    np.testing.assert_allclose(samples, eval_mode, rtol=1e-12, atol=0)
    assert np.array_equal(a.sample(noise=a.fixed_noise), b.sample(noise=b.fixed_noise))
    assert not np.allclose(samples, a.G.forward(noise, train=True))  # batch statistics, dropout


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
    d_loss, _, _, _ = trainer.discriminator_step(real, fake)
    assert np.isclose(d_loss, -np.mean(np.log(p_real)) - np.mean(np.log(1 - p_fake)))
    ref, _ = losses.binary_cross_entropy(p_real, 1.0)
    assert np.isclose(ref, -np.mean(np.log(p_real)))


# -- objectives and extensions ------------------------------------------------------------
class CountingExtension:
    """Records the order of its hooks, adds a penalty 0.5 * ||W||^2 of D's first weight, keeps state."""

    history_keys = ("weight_penalty",)

    def __init__(self):
        self.calls, self.total = [], np.zeros(1)

    def d_penalty(self, trainer, batch):
        self.calls.append("penalty")
        assert set(batch) == {"real", "fake", "labels", "fake_labels"}
        layer = trainer.D[0]
        layer.grads["weight"] += layer.params["weight"]
        return 0.5 * np.sum(layer.params["weight"] ** 2)

    def after_d_step(self, trainer):
        self.calls.append("d")
        self.total += 1

    def after_g_step(self, trainer):
        self.calls.append("g")

    def state_dict(self):
        return {"total": self.total.copy()}

    def load_state_dict(self, state):
        self.total = state["total"].copy()


def test_extension_hooks_run_in_order_and_their_penalty_is_recorded():
    G, D = tiny_models()
    ext = CountingExtension()
    trainer = GANTrainer(G, D, SGD(G, lr=0.1), SGD(D, lr=0.1), get_head("softmax"),
                         GANConfig(z_dim=4, batch_size=8, k=2, seed=5, n_progress=3), extensions=[ext])
    penalty = 0.5 * np.sum(D[0].params["weight"] ** 2)
    trainer.train_step(real_batch())
    trainer.train_step(real_batch(seed=1))
    assert ext.calls == ["penalty", "d", "penalty", "d", "g"]
    assert trainer.history_keys[-1] == "weight_penalty"
    assert np.isclose(trainer.history["weight_penalty"][0], penalty)
    assert trainer.extension_arrays() == {"CountingExtension/total": ext.total} and ext.total[0] == 2
    fresh = CountingExtension()
    GANTrainer(G, D, SGD(G), SGD(D), get_head("softmax"), trainer.config,
               extensions=[fresh]).load_extension_arrays(trainer.extension_arrays())
    assert fresh.total[0] == 2


def test_penalty_gradient_reaches_the_discriminator_update():
    """With the cross-entropy loss switched off (lr 0 elsewhere), the update is -lr * penalty gradient."""
    G, D = tiny_models()

    class ZeroGame:
        stat_keys = ()

        def d_loss(self, out, is_real, labels, rng):
            return np.float64(0.0), np.zeros_like(out)

        def g_loss(self, out, labels):
            return np.float64(0.0), np.zeros_like(out)

        def score(self, out):
            return out[:, 0]

        def stats(self, real, fake):
            return []

    trainer = GANTrainer(G, D, SGD(G, lr=0.1), SGD(D, lr=0.1), ZeroGame(),
                         GANConfig(z_dim=4, batch_size=8, seed=5, n_progress=3), extensions=[CountingExtension()])
    before = D[0].params["weight"].copy()
    trainer.train_step(real_batch())
    assert np.allclose(D[0].params["weight"], before - 0.1 * before)
    assert trainer.history_keys == ("d_loss", "g_loss", "weight_penalty")


class LabelsAsFeatures(Dense):
    """Test-only conditional layer: reads (x, y) and appends y's one-hot code to x."""

    def __init__(self, in_features, num_classes, out_features, rng):
        super().__init__(in_features + num_classes, out_features, "tanh", rng=rng)
        self.num_classes, self.input_pattern = num_classes, None

    def _check_input(self, xy):
        x, y = xy
        assert y.dtype.kind == "i"
        super()._check_input(x)

    def _forward(self, xy, train):
        x, y = xy
        onehot = (np.arange(self.num_classes) == y[:, None]).astype(x.dtype)
        out, cache = super()._forward(np.concatenate([x, onehot], axis=1), train)
        return out, (cache, x.shape[1])

    def _backward(self, dy, cache):
        inner, width = cache
        return super()._backward(dy, inner)[:, :width], None

    def _param_backward(self, dy, cache):
        super()._param_backward(dy, cache[0])


def conditional_trainer(joint=True):
    rng = RNG(4)
    G = Chain(LabelsAsFeatures(4, 3, 6, rng), Dense(6, 5, "sigmoid", rng=rng)).to(dtype=np.float64)
    D = Chain(LabelsAsFeatures(5, 3, 7, rng), Dense(7, 1, rng=rng)).to(dtype=np.float64)
    config = GANConfig(z_dim=4, batch_size=8, seed=5, n_progress=3, num_classes=3)
    trainer = GANTrainer(G, D, SGD(G, lr=0.1), SGD(D, lr=0.1), get_head("logit"), config)
    trainer.joint_d_batch = joint
    return trainer


def test_conditional_models_read_labels_and_fakes_get_uniform_labels():
    trainer = conditional_trainer()
    labels = trainer.sample_labels(30_000)
    assert labels.dtype == np.int64 and set(np.unique(labels)) == {0, 1, 2}
    assert np.allclose(np.bincount(labels) / 30_000, 1 / 3, atol=0.01)
    g_before = snapshot(trainer.G)
    trainer.train_step((real_batch(), np.array([0, 1, 2, 0, 1, 2, 0, 1])))
    assert not same(g_before, snapshot(trainer.G)) and len(trainer.history["d_loss"]) == 1
    samples = trainer.sample(noise=trainer.fixed_noise, labels=np.array([0, 1, 2]))
    assert samples.shape == (3, 5)
    with pytest.raises(ValueError, match="labels"):
        trainer.train_step(real_batch())


def test_conditional_joint_pass_equals_two_passes():
    results = []
    for joint in (True, False):
        trainer = conditional_trainer(joint)
        real, labels = real_batch(), np.array([2, 1, 0, 2, 1, 0, 2, 1])
        fake_labels = trainer.sample_labels(8)
        fake = trainer.G.forward((trainer.sample_noise(8), fake_labels), keep_cache=False)
        loss, *_ = trainer.discriminator_step(real, fake, labels, fake_labels)
        results.append((loss, snapshot(trainer.D)))
    assert np.isclose(results[0][0], results[1][0], rtol=1e-13)
    assert all(np.allclose(results[0][1][k], results[1][1][k], rtol=1e-12) for k in results[0][1])
