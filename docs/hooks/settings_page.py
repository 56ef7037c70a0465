"""mkdocs hook: the configuration page's table, generated from the service's Settings class.

Each environment variable's name, default, bounds and description come from the pydantic field
itself, so `python -m app --help`, this page and the code cannot disagree. The page holds the
marker `<!-- settings-table -->` where the table goes.
"""

import importlib
import types
import typing
from pathlib import Path
from typing import Any, Final

import annotated_types
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import Files
from mkdocs.structure.pages import Page
from pydantic.fields import FieldInfo

MARKER: Final = "<!-- settings-table -->"
REPO: Final = Path(__file__).resolve().parents[2]
# Where the service's Settings live: the one place to change when the module moves.
SETTINGS_MODULE: Final = "app.core.config"
MIB: Final = 1024 * 1024
BOUNDS: Final = (
    (annotated_types.Ge, "ge", ">="),
    (annotated_types.Gt, "gt", ">"),
    (annotated_types.Le, "le", "<="),
    (annotated_types.Lt, "lt", "<"),
)


def settings_class() -> type[Any]:
    """The service's pydantic Settings class (imported here only)."""
    settings: type[Any] = importlib.import_module(SETTINGS_MODULE).Settings
    return settings


def show_value(value: object) -> str:
    """A default or bound as a reader wants it: sizes in MiB too, paths from the repository."""
    if isinstance(value, Path) and value.is_relative_to(REPO):
        return str(value.relative_to(REPO))
    if isinstance(value, int) and not isinstance(value, bool) and value >= MIB and value % MIB == 0:
        return f"{value} ({value // MIB} MiB)"
    return str(value)


def show_default(field: FieldInfo) -> str:
    if field.default in (None, "", ()):
        return "unset"
    return f"`{show_value(field.default)}`"


def bounds(field: FieldInfo) -> list[str]:
    """The field's constraints as short phrases: `1 <= n <= 100000`, `one of: a, b`, ..."""
    found: list[str] = []
    for meta in field.metadata:
        for kind, attribute, symbol in BOUNDS:
            if isinstance(meta, kind):
                found.append(f"{symbol} {show_value(getattr(meta, attribute))}")
        if isinstance(meta, annotated_types.MaxLen):
            found.append(f"at most {meta.max_length} characters")
        pattern = getattr(meta, "pattern", None)
        if pattern:
            found.append(f"matches `{pattern}`")
    choices = literal_choices(field.annotation)
    if choices:
        found.append("one of " + ", ".join(f"`{c}`" for c in choices))
    return found


def literal_choices(annotation: Any) -> list[str]:
    if typing.get_origin(annotation) is typing.Literal:
        return [str(arg) for arg in typing.get_args(annotation)]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return [c for arg in typing.get_args(annotation) for c in literal_choices(arg)]
    return []


def escape(text: str) -> str:
    return text.replace("|", "\\|")


def settings_table() -> str:
    rows = [
        "| variable | default | allowed | meaning |",
        "|---|---|---|---|",
    ]
    for name, field in settings_class().model_fields.items():
        allowed = "; ".join(bounds(field)) or "any"
        rows.append(
            f"| `{name.upper()}` | {escape(show_default(field))} | {escape(allowed)} "
            f"| {escape(field.description or '')} |"
        )
    return "\n".join(rows)


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, settings_table())
