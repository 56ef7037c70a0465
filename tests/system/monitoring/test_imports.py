"""app.monitoring runs on NumPy, prometheus-client and the model package: no SciPy,
scikit-learn or pandas (the tests' references), and none of the API layers that will import it."""

import subprocess
import sys

MODULES = ("alarms", "decision", "drift", "figures", "metrics", "state", "typicality")
BANNED = ("scipy", "sklearn", "pandas", "fastapi", "starlette", "pydantic", "yaml")
LAYERS = ("app.api", "app.v2", "app.http", "app.main")


def test_monitoring_imports_only_its_runtime() -> None:
    code = (
        "import sys\n"
        + "".join(f"import app.monitoring.{m}\n" for m in MODULES)
        + "top = {m.split('.')[0] for m in sys.modules}\n"
        + f"print(sorted(top & set({BANNED!r})))\n"
        + f"print(sorted(m for m in sys.modules if m.startswith({LAYERS!r})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.splitlines() == ["[]", "[]"]
