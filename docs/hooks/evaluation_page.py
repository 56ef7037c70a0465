"""mkdocs hook: the model card's evaluation tables, generated from `make evaluate`'s CSV.

`make evaluate ARGS="--sweep 0.25,0.3,0.5 --csv docs/data/evaluation.csv"` writes every fold's
figures as one tidy CSV; the committed copy is rendered here by the script itself
(`--report-from`, which fits nothing), so the page shows exactly the tables the run printed.
The page holds the marker `<!-- evaluation-report -->` where they go.
"""

import subprocess
import sys
from pathlib import Path
from typing import Final

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import Files
from mkdocs.structure.pages import Page

MARKER: Final = "<!-- evaluation-report -->"
REPO: Final = Path(__file__).resolve().parents[2]
EVALUATION_CSV: Final = REPO / "docs" / "data" / "evaluation.csv"
# The flags of the run the CSV holds, besides --csv: --report-from needs the run's own flags.
RUN_FLAGS: Final = ("--sweep", "0.25,0.3,0.5")


def evaluate_command() -> list[str]:
    """How `make evaluate` runs the evaluation script: the one place to change if it moves."""
    return [sys.executable, "-m", "scripts.evaluate"]


def evaluation_report(csv: Path = EVALUATION_CSV) -> str:
    command = [*evaluate_command(), *RUN_FLAGS, "--report-from", str(csv), "--quiet"]
    result = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=600, check=False
    )
    if result.returncode != 0:
        raise PluginError(f"{' '.join(command)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, evaluation_report())
