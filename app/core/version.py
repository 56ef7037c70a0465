"""The service's version: the installed package's, read once."""

from functools import cache
from importlib.metadata import PackageNotFoundError, version


@cache
def package_version() -> str:
    try:
        return version("malignancy-predictor")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0.0.0+unknown"
