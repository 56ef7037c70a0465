"""Programs from Debian packages that some tests run (promtool, prometheus).

`require_tool` returns the program's path; without it, the test is skipped with the package to
install, except under CI=true, where a missing tool fails the test instead of skipping it.
"""

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import pytest


def require_tool(name: str, package: str, env: Mapping[str, str] = os.environ) -> Path:
    found = shutil.which(name)
    if found:
        return Path(found)
    message = f"{name} not found: install it with `sudo apt-get install {package}`"
    if env.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: a missing tool fails its tests)")
    pytest.skip(message)
