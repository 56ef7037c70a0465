"""mkdocs hook: the performance page's figures, generated from the latest `make bench` JSON.

`make bench` writes bench-results/{train,infer,http}.json; the latest run's files are committed
in docs/data/bench/, and scripts/bench/report.py, which writes BENCH.md from them after a run,
renders them here too, with the machine they ran on. The page holds the marker
`<!-- bench-report -->` where the figures go.
"""

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Final, cast

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import Files
from mkdocs.structure.pages import Page

MARKER: Final = "<!-- bench-report -->"
BENCH_DIR: Final = Path(__file__).resolve().parent.parent / "data" / "bench"
# Where the benchmark report lives: the one place to change when the module moves.
REPORT_MODULE: Final = "scripts.bench.report"


def report_renderer() -> Callable[[Path], str]:
    """scripts/bench/report.py's render(out_dir) -> Markdown (imported here only)."""
    return cast(Callable[[Path], str], importlib.import_module(REPORT_MODULE).render)


def bench_section(bench_dir: Path = BENCH_DIR) -> str:
    """The report without its own top heading: the page has one."""
    lines = report_renderer()(bench_dir).splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return "\n".join(lines).strip()


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, bench_section())
