"""The model package serves with NumPy alone: no web framework, no pandas, no plotting."""

import subprocess
import sys


def test_model_imports_without_web_or_training_packages() -> None:
    code = (
        "import sys, model.artifact, model.training, model.data, model.metrics;"
        "banned = {'fastapi', 'starlette', 'pydantic', 'pandas', 'matplotlib', 'sklearn', 'tqdm'};"
        "print(sorted(banned & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
