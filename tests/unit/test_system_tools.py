"""A missing system tool skips its tests with an install hint, except under CI, where it fails."""

import pytest

from tests.system_tools import require_tool

MISSING = "no-such-tool-a8f3"


def test_a_present_tool_is_found() -> None:
    assert require_tool("sh", "dash").name == "sh"


@pytest.mark.parametrize("env", [{}, {"CI": "false"}])
def test_a_missing_tool_skips_with_the_package_to_install(env: dict[str, str]) -> None:
    with pytest.raises(pytest.skip.Exception, match="apt-get install prometheus"):
        require_tool(MISSING, "prometheus", env)


def test_a_missing_tool_fails_under_ci() -> None:
    with pytest.raises(pytest.fail.Exception, match="apt-get install prometheus"):
        require_tool(MISSING, "prometheus", {"CI": "true"})
