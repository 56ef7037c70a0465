"""Argument parsing shared by the scripts: one-line errors with exit code 2, checked numbers,
and loading the data file with the same one-line error."""

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar

from model.data import DataError, Dataset, load_dataset

N = TypeVar("N", int, float)


class OneLineParser(argparse.ArgumentParser):
    """Bad arguments get one line on stderr and exit code 2, without the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _convert(text: str, convert: Callable[[str], N], kind: str) -> N:
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a {kind}") from None


def _at_least(text: str, low: int) -> int:
    value = _convert(text, int, "whole number")
    if value < low:
        raise argparse.ArgumentTypeError(f"{text} must be at least {low}")
    return value


def positive_int(text: str) -> int:
    return _at_least(text, 1)


def at_least_two(text: str) -> int:
    return _at_least(text, 2)


def non_negative_int(text: str) -> int:
    return _at_least(text, 0)


def positive_float(text: str) -> float:
    value = _convert(text, float, "number")
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text} must be a positive finite number")
    return value


def probability(text: str) -> float:
    value = _convert(text, float, "number")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} must lie in [0, 1]")
    return value


def load_dataset_or_report(prog: str, path: Path) -> Dataset | None:
    """The data file, or None after one line naming the problem on stderr (the caller exits 2)."""
    try:
        return load_dataset(path)
    except DataError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return None
