"""The dynamics lab: Dirac-GAN Jacobians and update maps against their closed forms, the trainer's step
as the alternating map, matrix-free spectra of a real network, and the mixtures' coverage metric."""
import json
from pathlib import Path

import numpy as np
import pytest

from scratchgan.gradcheck import check_layer, numeric_gradient, rel_error
from scratchgan.lab import dirac
from scratchgan.lab.game import Game, frozen_trainer
from scratchgan.lab.mixtures import ToyRun, coverage, get_mixture, grid, ring
from scratchgan.lab.spectrum import float64_game, leading_eigenvalues, play, track_full_batch

ROOT = Path(__file__).resolve().parents[1]
NS, MM, WGAN = "GAN, non-saturating", "GAN, minimax", "WGAN"
GP, R1 = f"WGAN-GP (lambda={dirac.GP_WEIGHT:g})", f"GAN + R1 (gamma={dirac.R1_WEIGHT:g})"


@pytest.fixture(scope="module")
def report():
    return {case["name"]: case for case in dirac.analyse((0.1, 0.5, 1.0))["cases"]}


def eig(case):
    return np.array([complex(re, im) for re, im in case["eigenvalues"]])


# -- Dirac-GAN: the continuous-time Jacobian --------------------------------------------------------------
def test_standard_gan_eigenvalues_are_plus_minus_half_i(report):
    for name in (NS, MM):
        np.testing.assert_allclose(sorted(eig(report[name]), key=np.imag), [-0.5j, 0.5j], atol=1e-9)
        np.testing.assert_allclose(report[name]["jacobian"], [[0, 0.5], [-0.5, 0]], atol=1e-9)
        assert report[name]["equilibrium"] and report[name]["v_at_point"] == [0, 0]


def test_wgan_eigenvalues_are_plus_minus_i(report):
    np.testing.assert_allclose(sorted(eig(report[WGAN]), key=np.imag), [-1j, 1j], atol=1e-9)


def test_r1_eigenvalues_match_the_closed_form(report):
    g = dirac.R1_WEIGHT
    expected = (-g + np.array([-1, 1]) * np.sqrt(complex(g * g - 1))) / 2
    np.testing.assert_allclose(sorted(eig(report[R1]), key=np.imag), sorted(expected, key=np.imag), atol=1e-9)
    assert all(z.real < 0 for z in eig(report[R1]))


def test_wgan_gp_has_no_equilibrium_and_its_one_sided_jacobian(report):
    lam = dirac.GP_WEIGHT
    np.testing.assert_allclose(report[GP]["jacobian"], [[0, 1], [-1, -2 * lam]], atol=1e-9)
    expected = -lam + np.array([-1, 1]) * np.sqrt(complex(lam * lam - 1))
    np.testing.assert_allclose(sorted(eig(report[GP]), key=np.imag), sorted(expected, key=np.imag), atol=1e-9)
    assert not report[GP]["equilibrium"]
    game = dirac.dirac_game(GP)
    for side in (1, -1):   # v_psi -> +-2 lambda on either side of psi = 0: a jump, no zero
        np.testing.assert_allclose(game.v(np.array([0.0, side * 1e-9])), [side * 1e-9, side * 2 * lam], atol=1e-8)


def test_every_jacobian_matches_its_closed_form(report):
    for case in report.values():
        assert case["jacobian_error"] < 1e-9, case["name"]


# -- Dirac-GAN: discrete steps ------------------------------------------------------------------------------
def test_update_map_eigenvalues_match_the_closed_forms(report):
    for case in report.values():
        for m in case["maps"]:
            got, want = np.array(m["eigenvalues"]), np.array(m["closed_form"])
            np.testing.assert_allclose(got, want, atol=1e-8, err_msg=f"{case['name']} {m['scheme']} {m['lr']}")


def test_simultaneous_steps_diverge_and_alternating_steps_circle_for_the_standard_gan(report):
    for m in report[NS]["maps"]:
        if m["scheme"] == "simultaneous":       # eigenvalues 1 +- 0.5 i h: radius sqrt(1 + h^2 / 4) > 1
            assert m["spectral_radius"] == pytest.approx(np.sqrt(1 + m["lr"] ** 2 / 4), abs=1e-9)
            assert m["verdict"].startswith("diverges")
        else:                                   # determinant 1 and complex pair: on the unit circle
            assert m["spectral_radius"] == pytest.approx(1.0, abs=1e-9)
            assert m["verdict"].startswith("circles")
    assert all(m["spectral_radius"] < 1 for m in report[R1]["maps"])


def test_the_trainers_step_is_the_alternating_map():
    """GANTrainer.train_step with SGD(lr) moves (theta, psi) exactly as the alternating map."""
    for name in (NS, MM, WGAN, R1, GP):
        game = dirac.dirac_game(name)
        by_map = dirac.trajectory(game, "alternating", 0.3, (0.7, -0.4), 25)
        by_trainer = dirac.trainer_trajectory(name, 0.3, (0.7, -0.4), 25)
        np.testing.assert_allclose(by_trainer, by_map, rtol=1e-12, atol=1e-14, err_msg=name)


def test_iterates_behave_as_the_spectra_say(report):
    ns, r1 = report[NS]["trajectories"], report[R1]["trajectories"]
    assert r1["alternating"]["end"] < 1e-3 and r1["simultaneous"]["end"] < 1e-3          # converge
    low, high = report[GP]["trajectories"]["alternating"]["last_50"]
    assert low > 0.8                                                                     # a limit cycle
    assert ns["simultaneous"]["last_50"][0] > 0.3                                        # never settles


def test_dirac_generator_and_penalties_gradients():
    G, D = dirac.dirac_models(0.3, -0.8)
    errors = check_layer(G, np.random.default_rng(0).standard_normal((3, 1)))
    assert max(errors.values()) < 1e-9
    for penalty in (dirac.DiracGradientPenalty(0.7), dirac.DiracR1Penalty(0.4)):
        trainer = frozen_trainer(G, D, dirac.cases()[NS][0]())
        psi = D.params["weight"]

        def value():
            D.zero_grad()
            return penalty.d_penalty(trainer, None)
        D.zero_grad()
        penalty.d_penalty(trainer, None)
        analytic = D.grads["weight"].copy()
        assert rel_error(analytic, numeric_gradient(value, psi)) < 1e-9
    with pytest.raises(ValueError, match="bias-free Dense\\(1, 1\\)"):
        from scratchgan.layers import Dense
        bad = frozen_trainer(G, Dense(1, 1).to(dtype=np.float64), dirac.cases()[NS][0]())
        dirac.DiracR1Penalty().d_penalty(bad, None)


# -- a real network's spectrum -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_game():
    run = ToyRun(ring(), {"hidden": 6, "historical_averaging": 0.05}, steps_per_epoch=20)
    run.train(1)
    return run, float64_game(run, samples=64)


def test_jacobian_vector_products_match_the_dense_jacobian(small_game):
    run, game = small_game
    w = game.w
    dense = game.jacobian(w)
    u = np.random.default_rng(0).standard_normal(len(w))
    assert rel_error(game.jvp(w, u), dense @ u) < 1e-6
    np.testing.assert_array_equal(game.w, w)                     # parameters restored
    assert np.abs(dense[:game.n_theta, :game.n_theta]).max() > 0  # G's own block is not empty


def test_arpack_finds_the_dense_spectrums_leading_eigenvalues(small_game):
    run, game = small_game
    values = np.linalg.eigvals(game.jacobian(game.w))
    found, matvecs = leading_eigenvalues(game, k=3, which="LR")
    np.testing.assert_allclose(np.sort(found.real)[::-1], np.sort(values.real)[::-1][:3], atol=1e-5)
    found, _ = leading_eigenvalues(game, k=3, which="LM")
    np.testing.assert_allclose(np.sort(np.abs(found))[::-1], np.sort(np.abs(values))[::-1][:3], atol=1e-5)
    assert matvecs > 3


def test_the_spectral_game_leaves_the_training_run_alone(small_game):
    run, game = small_game
    means = {k: v.copy() for k, v in run.trainer.extensions[0].means["D"].items()}
    game.v()
    game.v(game.w + 0.1)
    for name, mean in run.trainer.extensions[0].means["D"].items():
        np.testing.assert_array_equal(mean, means[name])
        assert mean.dtype == np.float32


def test_leading_eigenvalues_keeps_what_converged_when_arpack_stops_early(small_game):
    run, game = small_game
    values, matvecs = leading_eigenvalues(game, k=3, which="LR", maxiter=1, tol=1e-14)
    assert len(values) <= 3 and matvecs > 0                      # no ArpackNoConvergence escapes


# -- gradient play on one fixed batch ----------------------------------------------------------------------
def test_play_is_an_alternating_gradient_step_on_the_fixed_game(small_game):
    run, game = small_game
    w, n, lr = game.w, game.n_theta, 0.05
    new, v = play(game, w, lr)
    np.testing.assert_array_equal(v, game.v(w))
    expected = w.copy()
    expected[n:] += lr * v[n:]                                  # D first, along v_D at w
    expected[:n] += lr * game.v(expected)[:n]                   # then G along v_G at the new D
    np.testing.assert_allclose(new, expected, rtol=0, atol=1e-15)


def test_track_full_batch_measures_the_game_it_plays():
    """Measurements before the first step and after every ``every``-th: ||v|| of the fixed game at the played
    parameters, the game's own samples and how far they moved, and ARPACK's eigenvalues (at most k)."""
    options = {"hidden": 8, "r1": 1.0}
    record = track_full_batch(options, steps=30, every=15, samples=16, k=2)
    assert record["steps"] == [0, 15, 30] and record["drift"][0] == 0
    game = float64_game(ToyRun(ring(), options, dtype=np.float64), samples=16)
    assert record["v_norm"][0] == pytest.approx(np.linalg.norm(game.v()), rel=1e-12)
    w = game.w
    for _ in range(15):
        w, _ = play(game, w, 0.2)
    assert record["v_norm"][1] == pytest.approx(np.linalg.norm(game.v(w)), rel=1e-9)
    points = np.asarray(game.trainer.G.forward(game.noise, train=False))
    np.testing.assert_allclose(record["points"][1], points, rtol=1e-9)
    moved = np.linalg.norm(record["points"][1] - record["points"][0], axis=1).mean()
    assert record["drift"][1] == pytest.approx(moved) and moved > 0
    assert all(1 <= len(values) <= 2 for values in record["LI"]) and all(m > 0 for m in record["matvecs"])


# -- mixtures ------------------------------------------------------------------------------------------------
def test_coverage_counts_modes_and_high_quality_samples():
    mixture = grid()
    rng = np.random.default_rng(0)
    assert len(mixture.centers) == 25 and len(ring().centers) == 8
    real = coverage(mixture.sample(2500, rng), mixture)
    assert real["modes_covered"] == 25 and real["high_quality"] > 0.98
    two = np.concatenate([mixture.centers[3] + 0.01 * rng.standard_normal((1000, 2)),
                          mixture.centers[7] + 0.01 * rng.standard_normal((19, 2)),   # 19 < 20: not covered
                          np.full((481, 2), 1.0)])                                     # between modes
    score = coverage(two, mixture)
    assert score["modes_covered"] == 1 and score["high_quality"] == pytest.approx(1019 / 1500)
    assert score["per_mode"][3] == 1000 and score["per_mode"][7] == 19
    with pytest.raises(ValueError, match="unknown mixture 'square'"):
        get_mixture("square")


# -- the command line ----------------------------------------------------------------------------------------
def lab(capsys, *args):
    from scratchgan.cli import main
    code = main(["lab", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_dirac_json(capsys):
    code, out, err = lab(capsys, "dirac", "--json", "--no-figures", "--lr", 0.2)
    assert code == 0, err
    report = json.loads(out)
    names = [case["name"] for case in report["cases"]]
    assert names == [NS, MM, WGAN, GP, R1]
    np.testing.assert_allclose(report["cases"][0]["eigenvalues"], [[0.0, -0.5], [0.0, 0.5]], atol=1e-9)
    assert {m["lr"] for m in report["cases"][0]["maps"]} == {0.2}
    code, out, err = lab(capsys, "dirac", "--lr", 0, "--no-figures")
    assert code == 2 and err.strip() == "scratchgan lab: error: --lr values must be > 0, got [0.0]"


@pytest.mark.parametrize("args, message", [
    (("mixture", "--epochs", 0), "--epochs must be at least 1, got 0"),
    (("mixture", "--k", 0), "--k must be at least 1, got 0"),
    (("collapse", "--steps-per-epoch", 0), "--steps-per-epoch must be at least 1, got 0"),
    (("converge", "--steps", 0), "--steps must be at least 1, got 0"),
    (("converge", "--lr", 0), "--lr must be > 0, got 0.0"),
    (("collapse", "--fixes", "mbd"), "unknown fix(es) ['mbd']; choose from none, minibatch, feature-matching, "
                                     "historical-averaging, label-smoothing, vbn"),
])
def test_cli_lab_options_are_checked_before_any_work(capsys, tmp_path, args, message):
    out = tmp_path / "never"
    code, _, err = lab(capsys, *args, "--out", out)
    assert code == 2 and err.strip() == f"scratchgan lab: error: {message}"
    assert not out.exists()


def test_finite_difference_r1_is_the_gradient_of_r1():
    """R1's parameter gradient from differences of the hand-written parameter gradients along grad_x D
    equals finite differences of the R1 value itself, and on the Dirac critic it is gamma psi."""
    from scratchgan import layers as L
    from scratchgan.backend import RNG
    from scratchgan.lab.game import FiniteDifferenceR1
    G = L.Chain(L.Dense(2, 3, rng=RNG(1))).to(dtype=np.float64)
    D = L.Chain(L.Dense(2, 5, "tanh", rng=RNG(2)), L.Dense(5, 4, "tanh", rng=RNG(3)),
                L.Dense(4, 1, rng=RNG(4))).to(dtype=np.float64)
    trainer = frozen_trainer(G, D, dirac.cases()[NS][0]())
    real = np.random.default_rng(0).standard_normal((6, 2))
    r1 = FiniteDifferenceR1(0.7)

    def value():
        out = D.forward(real, keep_cache=True)
        u = D.backward(np.ones_like(out))
        return 0.35 * np.sum(u * u) / 6
    D.zero_grad()
    penalty = float(r1.d_penalty(trainer, {"real": real}))
    analytic = {name: layer.grads[key].copy() for name, layer, key in D.named_parameters()}
    assert penalty == pytest.approx(value(), rel=1e-12)     # value() adds into D's grads: read them first
    for name, layer, key in D.named_parameters():
        if name != "2.bias":   # the last bias does not move grad_x D: both are 0
            assert rel_error(analytic[name], numeric_gradient(value, layer.params[key])) < 1e-6, name
    G, D = dirac.dirac_models(0.0, 0.8)
    trainer = frozen_trainer(G, D, dirac.cases()[NS][0]())
    D.zero_grad()
    FiniteDifferenceR1(0.5).d_penalty(trainer, {"real": np.zeros((1, 1))})
    assert D.grads["weight"][0, 0] == pytest.approx(0.5 * 0.8, rel=1e-8)


# -- end to end (slow): the demos and the longer lab parts on tiny settings ----------------------------------
@pytest.mark.slow
def test_demo_dirac_gan(tmp_path):
    from test_demos import run_demo
    out = run_demo("dirac_gan.py", "--out", tmp_path)
    assert "J = [[0.0, 0.5], [-0.5, 0.0]]" in out and "GAN + R1 (gamma=0.5)" in out
    assert (tmp_path / "dirac_fields.png").stat().st_size > 10000
    assert (tmp_path / "dirac_eigenvalues.png").stat().st_size > 10000


@pytest.mark.slow
def test_demo_gan_spectrum(tmp_path):
    from test_demos import run_demo
    out = run_demo("gan_spectrum.py", "--epochs", 1, "--steps-per-epoch", 5, "--k", 2, "--out", tmp_path)
    assert "Jacobian-vector products" in out and "epoch 1:" in out
    assert (tmp_path / "spectrum.png").exists()
    out = run_demo("gan_spectrum.py", "--full-batch", "--steps", 4, "--every-steps", 2, "--k", 2, "--out", tmp_path)
    assert "R1, gamma 1, full batch" in out and "step 4:" in out and "||v||" in out
    assert (tmp_path / "convergence.png").stat().st_size > 10000


@pytest.mark.slow
def test_demo_mode_collapse(tmp_path):
    from test_demos import run_demo
    out = run_demo("mode_collapse.py", "--mixture", "ring", "--epochs", 2, "--steps-per-epoch", 5, "--seeds", 1,
                   "--fixes", "none", "label-smoothing", "--out", tmp_path)
    assert "ring: modes covered per epoch" in out
    report = json.loads((tmp_path / "fixes.json").read_text())
    assert set(report["summary"]["ring"]) == {"none", "label-smoothing"}
    assert (tmp_path / "ring_collapse.gif").exists() and (tmp_path / "fixes_ring.png").exists()


@pytest.mark.slow
def test_cli_lab_mixture_and_collapse(capsys, tmp_path):
    from PIL import Image
    code, out, err = lab(capsys, "mixture", "--epochs", 2, "--steps-per-epoch", 5, "--k", 2, "--every", 1,
                         "--out", tmp_path / "mixture")
    assert code == 0, err
    report = json.loads((tmp_path / "mixture" / "spectrum.json").read_text())
    for run in report["runs"].values():
        assert run["epochs"] == [0, 1, 2] and len(run["eigenvalues_largest_real_part"][-1]) == 2
        assert all(m > 0 for m in run["matvecs"]) and run["drift"][0] == 0
    assert "r1" in report["runs"]["R1, gamma 1"]["options"]
    code, out, err = lab(capsys, "converge", "--steps", 4, "--every", 2, "--k", 2, "--out", tmp_path / "converge")
    assert code == 0, err
    report = json.loads((tmp_path / "converge" / "convergence.json").read_text())
    assert set(report["runs"]) == {"R1, gamma 1, full batch", "no regularization, full batch"}
    for run in report["runs"].values():
        assert run["steps"] == [0, 2, 4] and len(run["final_samples"]) == len(run["real"]) == 64 and run["drift"][0] == 0
        assert len(run["eigenvalues_largest_imaginary_part"][-1]) == 2
    assert (tmp_path / "converge" / "convergence.png").stat().st_size > 10000
    code, out, err = lab(capsys, "collapse", "--mixture", "grid", "--epochs", 3, "--steps-per-epoch", 5,
                         "--seeds", 2, "--fixes", "none", "minibatch", "--out", tmp_path / "collapse")
    assert code == 0, err
    with Image.open(tmp_path / "collapse" / "grid_collapse.gif") as gif:
        assert gif.n_frames == 4                                      # before training + 3 epochs
    report = json.loads((tmp_path / "collapse" / "fixes.json").read_text())
    assert len(report["per_epoch"]["grid"]["minibatch"]) == 2          # two seeds
    assert len(report["per_epoch"]["grid"]["minibatch"][0]) == 4
    assert report["summary"]["grid"]["none"]["modes_covered"] == [s[-1]["modes_covered"] for s in
                                                                   report["per_epoch"]["grid"]["none"]]
