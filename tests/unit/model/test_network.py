"""The NumPy network: initialization, forward pass, loss, gradients, fit and predict."""

import numpy as np
import pytest

from model.network import TwoLayerNet, bce_from_logits, logistic, sigmoid

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


# -- weight decay and early stopping -----------------------------------------------------------
def plain_loss(net: TwoLayerNet, X: np.ndarray, y: np.ndarray, weight_decay: float) -> float:
    """The module docstring's L, from `forward` and the squared weights, without `_Trainer`."""
    _, z2 = net.forward(X)
    penalty = 0.5 * weight_decay * (np.sum(net.W1_**2) + np.sum(net.W2_**2))
    return bce_from_logits(z2, y) + float(penalty)


def plain_gradient_descent(net: TwoLayerNet, X: np.ndarray, y: np.ndarray, steps: int) -> None:
    """The docstring's backward equations, one NumPy line each, applied `steps` times."""
    lam, n = net.weight_decay, len(y)
    for _ in range(steps):
        Z1, z2 = net.forward(X)
        A1 = np.maximum(Z1, 0.0)
        dz2 = (sigmoid(z2) - y) / n
        dW2 = dz2[np.newaxis, :] @ A1 + lam * net.W2_
        db2 = np.array([dz2.sum()])
        dZ1 = np.outer(dz2, net.W2_[0]) * (Z1 > 0)
        dW1 = dZ1.T @ X + lam * net.W1_
        db1 = dZ1.sum(axis=0)
        net.W1_, net.b1_ = net.W1_ - net.lr * dW1, net.b1_ - net.lr * db1
        net.W2_, net.b2_ = net.W2_ - net.lr * dW2, net.b2_ - net.lr * db2


@pytest.mark.parametrize("weight_decay", [0.0, 0.05, 1.0])
def test_weight_decay_gradients_match_finite_differences_of_the_plain_loss(
    weight_decay: float,
) -> None:
    net = TwoLayerNet(hidden=15, seed=1, weight_decay=weight_decay).init_params(9)
    net.b1_ = RNG.normal(scale=0.1, size=15)  # keep units off the ReLU kink
    loss, grads = net.loss_and_gradients(X_SMALL, Y_SMALL)
    assert loss == pytest.approx(plain_loss(net, X_SMALL, Y_SMALL, weight_decay), rel=1e-12)
    eps = 1e-6
    for name in ("W1", "b1", "W2", "b2"):
        param = getattr(net, f"{name}_")
        numeric = np.zeros_like(param)
        for idx in np.ndindex(param.shape):
            saved = param[idx]
            param[idx] = saved + eps
            up = plain_loss(net, X_SMALL, Y_SMALL, weight_decay)
            param[idx] = saved - eps
            down = plain_loss(net, X_SMALL, Y_SMALL, weight_decay)
            param[idx] = saved
            numeric[idx] = (up - down) / (2 * eps)
        np.testing.assert_allclose(
            getattr(grads, name), numeric, rtol=1e-5, atol=1e-8, err_msg=name
        )


def test_weight_decay_leaves_the_bias_gradients_alone() -> None:
    plain = TwoLayerNet(seed=1).init_params(9)
    decayed = TwoLayerNet(seed=1, weight_decay=0.5).init_params(9)
    for net in (plain, decayed):
        net.b1_ = np.full(15, 0.7)
        net.b2_ = np.array([0.4])
    _, g0 = plain.loss_and_gradients(X_SMALL, Y_SMALL)
    _, g1 = decayed.loss_and_gradients(X_SMALL, Y_SMALL)
    np.testing.assert_array_equal(g1.b1, g0.b1)
    np.testing.assert_array_equal(g1.b2, g0.b2)
    np.testing.assert_allclose(g1.W1, g0.W1 + 0.5 * decayed.W1_, rtol=1e-12)
    np.testing.assert_allclose(g1.W2, g0.W2 + 0.5 * decayed.W2_, rtol=1e-12)


@pytest.mark.parametrize("weight_decay", [0.0, 0.01, 0.3])
def test_fast_trainer_follows_the_plain_equations(weight_decay: float) -> None:
    fast = TwoLayerNet(lr=0.5, iterations=60, weight_decay=weight_decay).fit(X_SMALL, Y_SMALL)
    plain = TwoLayerNet(lr=0.5, weight_decay=weight_decay).init_params(9)
    plain_gradient_descent(plain, X_SMALL, Y_SMALL, steps=60)
    for name in ("W1_", "b1_", "W2_", "b2_"):
        np.testing.assert_allclose(getattr(fast, name), getattr(plain, name), rtol=1e-9, atol=1e-12)
    # the recorded loss is the penalised objective: at iteration 0, that of the initialization
    start = TwoLayerNet(weight_decay=weight_decay).init_params(9)
    expected = plain_loss(start, X_SMALL, Y_SMALL, weight_decay)
    step, loss = fast.loss_curve_[0]
    assert step == 0
    assert loss == pytest.approx(expected, rel=1e-12)


def test_weight_decay_shrinks_the_weights() -> None:
    norms = []
    for lam in (0.0, 0.01, 0.1):
        net = TwoLayerNet(lr=0.5, iterations=2000, weight_decay=lam).fit(X_SMALL, Y_SMALL)
        norms.append(np.sum(net.W1_**2) + np.sum(net.W2_**2))
    assert norms[0] > norms[1] > norms[2]


# Labels that a wide network can memorise but not generalise: a rule plus 25% flipped labels.
X_NOISY = RNG.random((200, 9))
Y_RULE = (X_NOISY[:, 0] + X_NOISY[:, 5] > 1.0).astype(float)
Y_NOISY = np.where(RNG.random(200) < 0.25, 1.0 - Y_RULE, Y_RULE)


def noisy_stopper(**kw: float) -> TwoLayerNet:
    args = {"hidden": 40, "lr": 2.0, "iterations": 20000, "early_stopping": True, "tol": 0.0}
    args |= {"n_iter_no_change": 5, "validation_every": 50, "validation_fraction": 0.2}
    return TwoLayerNet(**(args | kw))  # type: ignore[arg-type]


def test_early_stopping_stops_after_patience_checks_and_keeps_the_best_parameters() -> None:
    net = noisy_stopper().fit(X_NOISY, Y_NOISY)
    assert net.n_iter_ < net.iterations  # it stopped
    iterations, losses = zip(*net.validation_curve_, strict=True)
    assert list(iterations) == list(range(0, net.n_iter_, 50))
    assert net.best_iteration_ == iterations[int(np.argmin(losses))]
    assert net.best_validation_loss_ == min(losses)
    # tol 0: it stops at the 5th check after the best one
    assert net.n_iter_ - 1 == net.best_iteration_ + 5 * 50
    # the kept parameters are those after best_iteration_ steps on the training part alone
    train_idx, valid_idx = net._validation_split(Y_NOISY)
    again = TwoLayerNet(hidden=40, lr=2.0, iterations=net.best_iteration_)
    again.fit(X_NOISY[train_idx], Y_NOISY[train_idx])
    for name in ("W1_", "b1_", "W2_", "b2_"):
        assert getattr(net, name).tobytes() == getattr(again, name).tobytes()
    _, z2 = net.forward(X_NOISY[valid_idx])
    assert bce_from_logits(z2, Y_NOISY[valid_idx]) == pytest.approx(net.best_validation_loss_)


def test_early_stopping_split_is_stratified_disjoint_and_seeded() -> None:
    net = noisy_stopper(validation_fraction=0.25)
    train_idx, valid_idx = net._validation_split(Y_NOISY)
    assert len(np.intersect1d(train_idx, valid_idx)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train_idx, valid_idx])), np.arange(200))
    labels = Y_NOISY
    for cls in (0.0, 1.0):
        assert np.sum(labels[valid_idx] == cls) == round(0.25 * np.sum(labels == cls))
    again = noisy_stopper(validation_fraction=0.25)._validation_split(Y_NOISY)
    np.testing.assert_array_equal(again[1], valid_idx)
    other = noisy_stopper(validation_fraction=0.25, seed=2)._validation_split(Y_NOISY)
    assert not np.array_equal(other[1], valid_idx)


def test_early_stopping_leaves_the_initialization_stream_alone() -> None:
    stopped = noisy_stopper(iterations=1).fit(X_NOISY, Y_NOISY)
    plain = TwoLayerNet(hidden=40, seed=1).init_params(9)
    np.testing.assert_array_equal(stopped.W1_, plain.W1_)  # iteration 0 is the best check
    assert stopped.best_iteration_ == 0


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"weight_decay": -0.1}, "weight_decay must be a finite number >= 0"),
        ({"weight_decay": float("nan")}, "weight_decay must be a finite number >= 0"),
        ({"validation_fraction": 0.0}, "validation_fraction must lie strictly between 0 and 1"),
        ({"validation_fraction": 1.0}, "validation_fraction must lie strictly between 0 and 1"),
        ({"n_iter_no_change": 0}, "must be at least 1"),
        ({"validation_every": 0}, "must be at least 1"),
    ],
)
def test_regularisation_options_are_checked(kwargs: dict[str, float], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        TwoLayerNet(**kwargs)  # type: ignore[arg-type]


def test_early_stopping_needs_two_rows_of_each_class() -> None:
    with pytest.raises(ValueError, match="at least 2 rows of each class"):
        noisy_stopper().fit(X_SMALL[:3], np.array([0.0, 1.0, 1.0]))


@pytest.mark.parametrize("z", [-1000.0, -745.0, -709.0, -40.0, -1.0, 0.0, 1e-3, 3.0, 40.0, 1000.0])
def test_logistic_is_the_sigmoid_without_warnings(z: float) -> None:
    # pytest runs with warnings as errors: an overflow warning from e^-z would fail this
    expected = float(sigmoid(np.array([z]))[0])
    assert logistic(np.array([z]))[0] == pytest.approx(expected, rel=0, abs=2.3e-16)


def test_logistic_agrees_with_the_sigmoid_over_a_sweep() -> None:
    zs = np.linspace(-60.0, 60.0, 200_001)
    np.testing.assert_allclose(logistic(zs.copy()), sigmoid(zs), rtol=0, atol=2.3e-16)


def test_logistic_is_within_three_ulps_of_the_exact_value() -> None:
    zs = np.linspace(-60.0, 60.0, 200_001)
    exact = 1 / (1 + np.exp(-zs.astype(np.longdouble)))  # 64-bit mantissa on x86
    if np.finfo(np.longdouble).nmant <= np.finfo(np.float64).nmant:
        pytest.skip("this platform's long double is a double: no more exact reference")
    np.testing.assert_array_max_ulp(logistic(zs.copy()), exact.astype(np.float64), maxulp=3)


def test_logistic_writes_into_out_and_leaves_z_alone() -> None:
    z = np.array([-2.0, 0.0, 2.0])
    out = np.empty(3)
    assert logistic(z, out=out) is out
    np.testing.assert_array_equal(z, [-2.0, 0.0, 2.0])
    np.testing.assert_array_equal(out, 1 / (1 + np.exp(-z)))
    assert logistic(z) is z  # without out: in place
    np.testing.assert_array_equal(z, out)
