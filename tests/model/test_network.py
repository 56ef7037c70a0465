"""The NumPy network: initialization, forward pass, loss, gradients, fit and predict."""

import numpy as np
import pytest

from model.network import TwoLayerNet, bce_from_logits, sigmoid

RNG = np.random.default_rng(7)
X_SMALL = RNG.random((40, 9))
Y_SMALL = (X_SMALL[:, 0] + X_SMALL[:, 5] > 1.0).astype(float)


@pytest.fixture
def net() -> TwoLayerNet:
    return TwoLayerNet(hidden=15, seed=1).init_params(9)


def test_initialization_is_the_articles_legacy_seed_stream(net: TwoLayerNet) -> None:
    np.random.seed(1)  # noqa: NPY002 - the article's exact call, the reference we must match
    W1 = np.random.randn(15, 9) / np.sqrt(9)  # noqa: NPY002
    W2 = np.random.randn(1, 15) / np.sqrt(15)  # noqa: NPY002
    np.testing.assert_array_equal(net.W1_, W1)
    np.testing.assert_array_equal(net.W2_, W2)
    np.testing.assert_array_equal(net.b1_, np.zeros(15))
    np.testing.assert_array_equal(net.b2_, np.zeros(1))


def test_forward_matches_the_equations(net: TwoLayerNet) -> None:
    net.b1_ = RNG.normal(size=15)
    net.b2_ = np.array([0.3])
    Z1, z2 = net.forward(X_SMALL)
    expected_Z1 = X_SMALL @ net.W1_.T + net.b1_
    expected_z2 = np.maximum(expected_Z1, 0) @ net.W2_.ravel() + 0.3
    np.testing.assert_allclose(Z1, expected_Z1)
    np.testing.assert_allclose(z2, expected_z2)
    np.testing.assert_allclose(net.predict_proba(X_SMALL), 1 / (1 + np.exp(-expected_z2)))


def test_loss_is_the_mean_binary_cross_entropy(net: TwoLayerNet) -> None:
    loss, _ = net.loss_and_gradients(X_SMALL, Y_SMALL)
    p = net.predict_proba(X_SMALL)
    expected = -np.mean(Y_SMALL * np.log(p) + (1 - Y_SMALL) * np.log(1 - p))
    assert loss == pytest.approx(expected, rel=1e-12)


def test_gradients_match_finite_differences(net: TwoLayerNet) -> None:
    net.b1_ = RNG.normal(scale=0.1, size=15)  # keep units off the ReLU kink
    _, grads = net.loss_and_gradients(X_SMALL, Y_SMALL)
    eps = 1e-6
    for name in ("W1", "b1", "W2", "b2"):
        param = getattr(net, f"{name}_")
        analytic = getattr(grads, name)
        assert analytic.shape == param.shape
        numeric = np.zeros_like(param)
        for idx in np.ndindex(param.shape):
            saved = param[idx]
            param[idx] = saved + eps
            up, _ = net.loss_and_gradients(X_SMALL, Y_SMALL)
            param[idx] = saved - eps
            down, _ = net.loss_and_gradients(X_SMALL, Y_SMALL)
            param[idx] = saved
            numeric[idx] = (up - down) / (2 * eps)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8, err_msg=name)


def test_saturated_outputs_stay_finite_without_warnings() -> None:
    z = np.array([-1000.0, -40.0, 0.0, 40.0, 1000.0])
    p = sigmoid(z)  # warnings are errors in this suite: an overflow would fail here
    assert ((p >= 0) & (p <= 1)).all()
    assert p[0] == 0.0
    assert p[-1] == 1.0
    loss = bce_from_logits(z, np.array([1.0, 1.0, 1.0, 0.0, 0.0]))
    assert np.isfinite(loss)
    assert loss == pytest.approx((1000 + 40 + np.log(2) + 40 + 1000) / 5, rel=1e-9)


def test_training_on_huge_inputs_raises_no_warning() -> None:
    net = TwoLayerNet(hidden=4, lr=1.0, iterations=20).fit(X_SMALL * 1e4, Y_SMALL)
    assert np.isfinite(net.predict_proba(X_SMALL * 1e4)).all()


def test_fit_returns_self_lowers_the_loss_and_records_the_curve() -> None:
    net = TwoLayerNet(hidden=15, lr=0.5, iterations=300, log_every=100)
    assert net.fit(X_SMALL, Y_SMALL) is net
    steps = [i for i, _ in net.loss_curve_]
    assert steps == [0, 100, 200, 299]
    losses = [loss for _, loss in net.loss_curve_]
    assert losses == sorted(losses, reverse=True)
    assert losses[-1] < 0.5 * losses[0]


def test_fit_is_bit_identical_from_run_to_run() -> None:
    a = TwoLayerNet(lr=0.1, iterations=500).fit(X_SMALL, Y_SMALL)
    b = TwoLayerNet(lr=0.1, iterations=500).fit(X_SMALL, Y_SMALL)
    for name in ("W1_", "b1_", "W2_", "b2_"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes()


def test_progress_callback_sees_each_logged_loss() -> None:
    seen: list[tuple[int, float]] = []
    net = TwoLayerNet(iterations=250, log_every=100)
    net.fit(X_SMALL, Y_SMALL, progress=lambda i, loss: seen.append((i, loss)))
    assert seen == net.loss_curve_


def test_hidden_width_is_configurable() -> None:
    net = TwoLayerNet(hidden=4, iterations=5).fit(X_SMALL, Y_SMALL)
    assert net.W1_.shape == (4, 9)
    assert net.W2_.shape == (1, 4)


@pytest.mark.parametrize(
    ("X", "y", "problem"),
    [
        (np.ones(9), np.ones(1), "2-D"),
        (np.ones((3, 9)), np.array([0, 1, 2]), "0 and 1"),
        (np.ones((3, 9)), np.array([0, 1]), "3 rows but y has 2"),
        (np.full((2, 9), np.nan), np.array([0, 1]), "NaN"),
    ],
)
def test_fit_checks_its_input(X: np.ndarray, y: np.ndarray, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        TwoLayerNet(iterations=1).fit(X, y)


def test_predict_proba_checks_feature_count(net: TwoLayerNet) -> None:
    with pytest.raises(ValueError, match="expected 9 features, got 8"):
        net.predict_proba(np.ones((1, 8)))


def test_set_params_checks_shapes(net: TwoLayerNet) -> None:
    with pytest.raises(ValueError, match="W2 has shape"):
        net.set_params(net.W1_, net.b1_, np.ones((1, 3)), net.b2_)
