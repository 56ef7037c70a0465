"""The documentation site as `make docs` builds it: strict, complete, generated, and offline."""

import re
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Final

import pytest
from mkdocs.config import load_config

from app.core.config import Settings

REPO: Final = Path(__file__).resolve().parents[3]
EXTERNAL: Final = re.compile(r"^\s*(https?:)?//", re.IGNORECASE)
# Tags whose URL the browser loads by itself when it shows the page (not links a reader follows).
LOADED: Final = {
    "script": ("src",),
    "link": ("href",),
    "img": ("src", "srcset"),
    "source": ("src", "srcset"),
    "iframe": ("src",),
    "video": ("src", "poster"),
    "audio": ("src",),
    "embed": ("src",),
    "object": ("data",),
}
CSS_URL: Final = re.compile(r"(?:url\(\s*['\"]?|@import\s+['\"])([^'\")\s]+)", re.IGNORECASE)
MARKERS: Final = ("<!-- settings-table -->", "<!-- bench-report -->", "<!-- evaluation-")


class LoadedUrls(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in LOADED.get(tag, ()) and value:
                self.urls += [part.strip().split(" ")[0] for part in value.split(",")]
            if name == "style" and value:
                self.urls += CSS_URL.findall(value)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return out


def nav_pages(nav: Any) -> Iterator[str]:
    if isinstance(nav, str):
        yield nav
    elif isinstance(nav, list):
        for item in nav:
            yield from nav_pages(item)
    elif isinstance(nav, dict):
        for value in nav.values():
            yield from nav_pages(value)


def test_every_page_in_the_nav_is_built(site: Path) -> None:
    pages = list(nav_pages(load_config(str(REPO / "mkdocs.yml"))["nav"]))
    assert len(pages) >= 11
    for page in pages:
        built = site / Path(page).with_suffix(".html")
        assert built.is_file(), f"{page} was not built"
        html = built.read_text(encoding="utf-8")
        assert "<h1" in html, page
        for marker in MARKERS:
            assert marker not in html, f"{page} still holds {marker}: a hook did not run"


def test_no_page_loads_anything_from_outside_the_site(site: Path) -> None:
    pages = sorted(site.rglob("*.html"))
    assert pages
    for page in pages:
        parser = LoadedUrls()
        parser.feed(page.read_text(encoding="utf-8"))
        external = [url for url in parser.urls if EXTERNAL.match(url)]
        assert not external, f"{page.relative_to(site)} loads {external}"
    for sheet in site.rglob("*.css"):
        external = [u for u in CSS_URL.findall(sheet.read_text("utf-8")) if EXTERNAL.match(u)]
        assert not external, f"{sheet.relative_to(site)} loads {external}"


def test_search_works_offline(site: Path) -> None:
    # The offline plugin bundles the index as a script; a file:// page cannot fetch JSON.
    assert (site / "search" / "search_index.js").is_file()


def test_configuration_page_lists_every_setting(site: Path) -> None:
    html = (site / "configuration.html").read_text(encoding="utf-8")
    for name, field in Settings.model_fields.items():
        assert f"<code>{name.upper()}</code>" in html, name
        assert field.description, name
        first_words = " ".join(field.description.split()[:3])
        assert first_words.replace("`", "") in re.sub(r"<[^>]+>", "", html), name


def test_performance_page_shows_the_committed_run(site: Path) -> None:
    html = (site / "performance.html").read_text(encoding="utf-8")
    assert "Machine:" in html
    assert "No results yet" not in html
