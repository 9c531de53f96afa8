"""DiffAugment: the draws, the transformations against the pixel-by-pixel reference, the backward
through them (what G's gradient takes), eval mode, resuming the same draws."""
import numpy as np
import pytest

import scratchgan.layers as L
import scratchgan.reference as R
from scratchgan.backend import RNG
from scratchgan.gradcheck import check_layer, upstream_gradient


def batch(shape=(6, 2, 10, 9), seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def test_draws_stay_in_their_ranges_and_move_with_the_step():
    layer = L.DiffAugment(translation=0.25, cutout=0.5, seed=1)
    shape = (500, 1, 28, 28)
    d = layer.draws(shape)
    reach = int(0.25 * 28 / 2 + 0.5)                      # 4 pixels
    assert d["shift"].min() == -reach and d["shift"].max() == reach
    holes = (1 - d["mask"]).sum(axis=(1, 2, 3))
    assert holes.max() == 14 * 14 and holes.min() > 0     # a 14x14 square, clipped at the border
    assert set(np.unique(d["mask"])) == {0.0, 1.0}
    again = layer.draws(shape)
    assert np.array_equal(d["shift"], again["shift"]) and np.array_equal(d["mask"], again["mask"])
    layer.forward(np.zeros((2, 1, 28, 28), np.float32), train=True, keep_cache=False)
    assert int(layer.buffers["step"]) == 1
    assert not np.array_equal(layer.draws(shape)["shift"], d["shift"])


@pytest.mark.parametrize("policy", ["translation", "cutout", "translation,cutout"])
def test_forward_and_backward_equal_the_reference(policy):
    layer = L.DiffAugment(policy, translation=0.25, fill=-1.0, seed=2).to(dtype=np.float64)
    x = batch()
    d = layer.draws(x.shape)
    y = layer.forward(x, train=True, keep_cache=True)
    dy = upstream_gradient(y.shape)
    dx = layer.backward(dy)
    ref, caches = x, []
    if d["shift"] is not None:
        ref, cache = R.translate_forward(ref, d["shift"], -1.0)
        caches.append((R.translate_backward, cache))
    if d["mask"] is not None:
        ref, cache = R.cutout_forward(ref, d["mask"], -1.0)
        caches.append((R.cutout_backward, cache))
    dx_ref = dy
    for backward, cache in reversed(caches):
        dx_ref = backward(dx_ref, cache)
    assert np.array_equal(y, ref) and np.allclose(dx, dx_ref, rtol=0, atol=1e-15)
    assert not np.array_equal(y, x)


def test_translation_moves_pixels_and_fills_from_outside():
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    out, _ = R.translate_forward(x, np.array([[1, -2]]), fill=-1.0)
    assert out[0, 0].tolist() == [[-1, -1, -1, -1], [2, 3, -1, -1], [6, 7, -1, -1], [10, 11, -1, -1]]
    from scratchgan.layers.augment import translate
    assert np.array_equal(translate(x, np.array([[1, -2]]), -1.0), out)


def test_eval_mode_is_the_identity_and_draws_nothing():
    layer = L.DiffAugment()
    x = batch().astype(np.float32)
    y = layer.forward(x, train=False, keep_cache=True)
    assert np.array_equal(y, x) and int(layer.buffers["step"]) == 0
    assert np.array_equal(layer.backward(np.ones_like(y)), np.ones_like(x))


def test_a_discriminator_behind_it_gets_the_gradient_through_the_augmentation():
    """G's gradient: D = DiffAugment -> conv -> tanh -> conv; the input gradient and every parameter
    gradient of the whole chain against finite differences (the draws are fixed by the check's restore)."""
    D = L.Chain(L.DiffAugment(translation=0.25, fill=-1.0, seed=4), L.Conv2d(2, 3, 3, 2, 1, rng=RNG(0)),
                L.Tanh(), L.Conv2d(3, 1, 5, rng=RNG(1))).to(dtype=np.float64)
    errors = check_layer(D, batch((3, 2, 10, 9)), train=True)
    assert max(errors.values()) < 1e-7, errors


def test_state_dict_resumes_the_same_draws():
    a, b = L.DiffAugment(seed=5), L.DiffAugment(seed=5)
    x = batch().astype(np.float32)
    a.forward(x, train=True, keep_cache=False)
    b.load_state_dict(a.state_dict())
    assert np.array_equal(a.forward(x, train=True, keep_cache=False), b.forward(x, train=True, keep_cache=False))


def test_bad_arguments_and_inputs_name_the_layer():
    with pytest.raises(ValueError, match="DiffAugment: policy"):
        L.DiffAugment("colour")
    with pytest.raises(ValueError, match="DiffAugment: cutout ratio"):
        L.DiffAugment(cutout=0)
    with pytest.raises(ValueError, match=r"DiffAugment.*\(N, C, H, W\)"):
        L.DiffAugment().forward(np.zeros((3, 4), np.float32))
    layer = L.DiffAugment()
    layer.forward(np.zeros((2, 1, 5, 5), np.float32), train=True, keep_cache=True)
    with pytest.raises(ValueError, match="upstream gradient has shape"):
        layer.backward(np.zeros((2, 1, 4, 5), np.float32))
