"""The request/answer examples of README.md and docs/*.md, read by one convention.

A curl example is a ```console block: `$ ` and a command that runs curl (continued by lines
ending in a backslash), then the answer exactly as the server writes it. A Python example is a
```python block followed at once by a ```text block titled "output": what it prints. A block's
title (`title="..."`) says how its answer is checked: one containing "1e-15" compares numbers to
within 1e-15 (the NumPy and BLAS paths), one containing "shortened" checks only the fields
shown; otherwise the answer must be byte for byte what the server sends.
"""

import itertools
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

REPO: Final = Path(__file__).resolve().parents[3]
DOCUMENTED_URL: Final = "http://127.0.0.1:8000"
TOLERANCE: Final = 1e-15
FENCE: Final = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
TITLE: Final = re.compile(r'title="([^"]*)"')


def documents() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


@dataclass(frozen=True)
class Block:
    source: str  # "docs/api.md:42"
    lang: str
    title: str
    text: str


@dataclass(frozen=True)
class CurlExample:
    source: str
    title: str
    command: str
    shown: str

    @property
    def tolerance(self) -> float:
        return TOLERANCE if "1e-15" in self.title else 0.0

    @property
    def shortened(self) -> bool:
        return "shortened" in self.title

    @property
    def path(self) -> str:
        found = re.search(re.escape(DOCUMENTED_URL) + r"(/[A-Za-z0-9/._-]*)", self.command)
        if found is None:
            raise ValueError(f"{self.source}: no {DOCUMENTED_URL} URL in {self.command!r}")
        return found.group(1)

    def body(self) -> Any:
        """The JSON object the command sends (with -d, or as a binary request's JSON header),
        or None."""
        for word in shlex.split(self.command.replace("\\\n", " ")):
            if word.startswith("{"):
                return json.loads(word)
        return None


@dataclass(frozen=True)
class PythonExample:
    source: str
    title: str
    code: str
    shown: str


def blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        title = TITLE.search(match.group(2))
        line = text.count("\n", 0, match.start()) + 1
        found.append(
            Block(
                source=f"{path.relative_to(REPO)}:{line}",
                lang=match.group(1),
                title=title.group(1) if title else "",
                text=match.group(3),
            )
        )
    return found


def curl_example(block: Block) -> CurlExample:
    lines = block.text.rstrip("\n").split("\n")
    if not lines[0].startswith("$ "):
        raise ValueError(f"{block.source}: a console block must start with `$ `")
    end = 0
    while lines[end].endswith("\\"):
        end += 1
    command = "\n".join([lines[0].removeprefix("$ "), *lines[1 : end + 1]])
    if "curl " not in command:
        raise ValueError(f"{block.source}: the example's command must run curl")
    shown = "\n".join(lines[end + 1 :])
    if not shown:
        raise ValueError(f"{block.source}: the example shows no answer")
    return CurlExample(block.source, block.title, command, shown)


def all_blocks() -> list[Block]:
    return [block for path in documents() for block in blocks(path)]


def curl_examples() -> list[CurlExample]:
    return [curl_example(b) for b in all_blocks() if b.lang == "console"]


def python_examples() -> list[PythonExample]:
    found = all_blocks()
    return [
        PythonExample(block.source, block.title, block.text, after.text)
        for block, after in itertools.pairwise(found)
        if block.lang == "python" and after.lang == "text" and after.title == "output"
    ]


def rows_sent(body: Any) -> int:
    """How many biopsies a predict, batch or V2 infer body holds (1 for any other body)."""
    if not isinstance(body, dict):
        return 1
    if isinstance(body.get("instances"), list):
        return len(body["instances"])
    inputs = body.get("inputs")
    if isinstance(inputs, list) and inputs:
        shape = inputs[0].get("shape", [1])
        return int(shape[0]) if shape else 1
    return 1


def needs_tolerance(example: CurlExample) -> bool:
    """Whether the answer comes through NumPy and BLAS, whose last bits depend on the CPU:
    two rows or more on /predict/batch or V2 infer, and /explain's contributions."""
    return example.path == "/explain" or rows_sent(example.body()) > 1


def agrees(shown: Any, actual: Any, tolerance: float, shortened: bool) -> bool:
    """`shown` equals `actual`; numbers to within `tolerance`; with `shortened`, an object may
    show only some of its fields."""
    if isinstance(shown, dict):
        if not isinstance(actual, dict):
            return False
        if not shortened and list(shown) != list(actual):
            return False
        return all(
            key in actual and agrees(value, actual[key], tolerance, shortened)
            for key, value in shown.items()
        )
    if isinstance(shown, list):
        return (
            isinstance(actual, list)
            and len(shown) == len(actual)
            and all(agrees(s, a, tolerance, shortened) for s, a in zip(shown, actual, strict=True))
        )
    if isinstance(shown, float) and isinstance(actual, float) and tolerance:
        return abs(shown - actual) <= tolerance * max(1.0, abs(actual))
    return type(shown) is type(actual) and bool(shown == actual)
