"""scripts/bench/request_path.py: a /predict answered, and the modules it names are the ones the
request really crosses, each once."""

from scripts.bench import request_path


def test_a_predict_names_the_modules_it_entered() -> None:
    status, modules = request_path.modules_of_predict()
    assert status == 200
    assert modules == sorted(set(modules))
    for module in (
        "app/middleware/observed.py",  # the access log and the metrics, in one middleware
        "app/observability/answered.py",
        "app/api/predictions.py",
        "app/core/dataplane.py",
        "model/scoring/single_row.py",
    ):
        assert module in modules
    assert all(m.startswith(("app/", "model/")) and m.endswith(".py") for m in modules)
    assert "app/main.py" not in modules  # building the app is not the request's path
