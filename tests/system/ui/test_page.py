"""The page at / does what a person needs, showing exactly what the API answers.

Each expected figure is fetched from the same live service outside the browser (httpx), with
its numbers kept as the JSON text the service wrote: the page must show that text, not its own
rounding or arithmetic.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
from playwright.sync_api import Browser, Route, expect

from app.openapi.examples import BENIGN, BORDERLINE, MALIGNANT
from model.data import Dataset
from model.features import FEATURE_NAMES
from tests.live_server import LiveServer, start_server
from tests.system.api import test_docs_browser as docs
from tests.system.api.test_browsers_and_proxies import PREFIX, http_thread, prefix_proxy
from tests.system.ui.conftest import UiPage, api_text, ui_page

pytestmark = pytest.mark.browser

ARTICLE_THRESHOLDS: Final = ("0.5", "0.7", "0.8", "0.9")
RANGE_STEP: Final = 0.01
KEY: Final = "page-test-key"
SMALL_BATCH: Final = 250
EXAMPLES: Final = {"benign": BENIGN, "malignant": MALIGNANT, "borderline": BORDERLINE}
IMPACTS: Final = ("serious", "critical")
UNSEEN: Final = "status of 404"  # the console's line for a fetch the page expects to fail


def exact(response: httpx.Response) -> Any:
    """The JSON body with every number as the text the service wrote."""
    response.raise_for_status()
    return json.loads(response.text, parse_float=str, parse_int=str)


def set_text(answer: Mapping[str, Any]) -> list[str]:
    return list(answer["prediction_set"])


def assert_shows_prediction(ui: UiPage, answer: Mapping[str, Any]) -> None:
    """The case view shows `answer` (exact(), from /predict or /explain) as the API wrote it."""
    page = ui.page
    expect(page.locator("#probability")).to_have_text(answer["probability"])
    expect(page.locator("#class")).to_have_text(answer["class"])
    expect(page.locator("#class-threshold")).to_have_text(answer["threshold"])
    expect(page.locator("#set-confidence")).to_have_text(answer["confidence"])
    expect(page.locator("#model-version")).to_have_text(answer["model_version"])
    shown_set = json.loads(page.locator("#prediction-set").get_attribute("data-set") or "null")
    assert shown_set == set_text(answer)
    if "decision" in answer:
        expect(page.locator("#decision-value")).to_have_text(answer["decision"])
        reasons = page.locator("#reasons li").evaluate_all(
            "items => items.map(i => i.dataset.reason)"
        )
        assert reasons == answer.get("reasons", [])
    else:  # nothing derived: no decision shown when the API gives none
        expect(page.locator("#decision")).to_be_hidden()
    if answer.get("atypical") is True:
        expect(page.locator("#atypical")).to_be_visible()
    else:
        expect(page.locator("#atypical")).to_be_hidden()


def shown_contributions(ui: UiPage) -> dict[str, str]:
    rows = ui.page.locator("#contributions tbody tr")
    result: dict[str, str] = rows.evaluate_all(
        "rows => Object.fromEntries(rows.map(r => [r.dataset.feature, r.cells[2].textContent]))"
    )
    return result


def expected_case(base: str, scores: Mapping[str, int], threshold: str) -> tuple[Any, Any]:
    body = {**scores, "threshold": float(threshold)}
    return (
        exact(api_text(base, "POST", "predict", json=body)),
        exact(api_text(base, "POST", "explain", json=body)),
    )


def default_threshold(base: str) -> str:
    return str(exact(api_text(base, "GET", "model"))["default_threshold"])


# -- a case ----------------------------------------------------------------------------------
@pytest.mark.parametrize("example", list(EXAMPLES))
def test_scoring_an_example_shows_exactly_the_apis_answer(ui: UiPage, example: str) -> None:
    prediction, explanation = expected_case(ui.base, EXAMPLES[example], default_threshold(ui.base))
    with docs.diagnosed(ui.guarded, f"ui-case-{example}"):
        ui.open("case")
        ui.page.locator(f'button[data-example="{example}"]').click()
        assert_shows_prediction(ui, prediction)
        expect(ui.page.locator("#contributions tbody tr")).to_have_count(len(FEATURE_NAMES))
        contributions = shown_contributions(ui)
        assert contributions == explanation["contributions"]
        # largest first, as the chart draws them
        sizes = [abs(float(contributions[name])) for name in contributions]
        assert sizes == sorted(sizes, reverse=True)
        why = ui.page.locator("#why-text").inner_text()
        assert explanation["base_value"] in why
        assert explanation["background_rows"] in why
        assert "explains what this model does" in why
        assert "nothing about what causes the disease" in why
        expect(
            ui.page.locator("#waterfall svg rect.bar-up, #waterfall svg rect.bar-down")
        ).to_have_count(len(FEATURE_NAMES))
        if example == "borderline":
            ui.screenshot("case")
            ui.screenshot("case-top", height=1270)  # docs/images/page.png
        ui.guard.assert_clean(ui.page)


def test_the_request_id_shown_is_the_one_the_answer_carried(ui: UiPage) -> None:
    with docs.diagnosed(ui.guarded, "ui-request-id"):
        with ui.page.expect_response(lambda r: r.url.endswith("/predict")) as answer:
            ui.open("case")
        request_id = answer.value.headers["x-request-id"]
        expect(ui.page.locator("#request-id")).to_have_text(request_id)
        ui.guard.assert_clean(ui.page)


def tab_to(ui: UiPage, element_id: str, limit: int = 60) -> None:
    """Press Tab until the element has the focus (fails after `limit` presses)."""
    for _ in range(limit):
        if (
            ui.page.evaluate("() => document.activeElement && document.activeElement.id")
            == element_id
        ):
            return
        ui.page.keyboard.press("Tab")
    pytest.fail(f"#{element_id} not reached with {limit} presses of Tab")


def test_a_case_can_be_scored_with_the_keyboard_alone(ui: UiPage) -> None:
    """Tab to each score, type it, press Enter: the answer is the API's for those scores."""
    scores = dict(MALIGNANT)
    scores["clump_thickness"] = 7  # set with the slider's arrow key below, from 8
    expected, explanation = expected_case(ui.base, scores, default_threshold(ui.base))
    with docs.diagnosed(ui.guarded, "ui-keyboard"):
        ui.open("case")
        expect(ui.page.locator("#probability")).not_to_be_empty()
        for name in FEATURE_NAMES:
            tab_to(ui, f"score-{name}")
            ui.page.keyboard.press("Control+A")
            ui.page.keyboard.type(str(MALIGNANT[name]))
        tab_to(ui, "range-clump_thickness")  # round the page again, to the first slider
        ui.page.keyboard.press("ArrowLeft")
        expect(ui.page.locator("#score-clump_thickness")).to_have_value("7")
        tab_to(ui, "score-button")
        outline = ui.page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
        assert outline not in ("", "none"), "the focused button shows no focus ring"
        ui.page.keyboard.press("Enter")
        assert_shows_prediction(ui, expected)
        assert shown_contributions(ui) == explanation["contributions"]
        ui.guard.assert_clean(ui.page)


def test_a_score_the_api_refuses_shows_its_message_and_marks_the_field(ui: UiPage) -> None:
    refused = api_text(ui.base, "POST", "predict", json={**BENIGN, "mitoses": 11})
    assert refused.status_code == 422
    with docs.diagnosed(ui.guarded, "ui-refused"):
        ui.open("case")
        expect(ui.page.locator("#probability")).not_to_be_empty()
        ui.page.locator("#score-mitoses").fill("11")
        ui.page.locator("#score-button").click()
        expect(ui.page.locator("#case-error")).to_have_text(refused.json()["message"])
        expect(ui.page.locator("#score-mitoses")).to_have_attribute("aria-invalid", "true")
        expect(ui.page.locator("#case-result")).to_be_hidden()
        ui.guard.assert_clean(ui.page, expected_console=["status of 422"])


# -- the threshold ---------------------------------------------------------------------------
def test_the_slider_shows_the_metrics_the_api_gives_at_the_articles_thresholds(
    ui: UiPage,
) -> None:
    with docs.diagnosed(ui.guarded, "ui-threshold"):
        ui.open("threshold")
        slider = ui.page.locator("#threshold-range")
        start = float(default_threshold(ui.base))
        expect(ui.page.locator("#metrics-threshold")).to_have_text(default_threshold(ui.base))
        position = start
        for threshold in ARTICLE_THRESHOLDS:
            expected = exact(api_text(ui.base, "GET", f"metrics?threshold={threshold}"))
            presses = round((float(threshold) - position) / RANGE_STEP)
            slider.focus()
            asked_before = len(ui.guard.asked)
            for _ in range(presses):
                ui.page.keyboard.press("ArrowRight")
            position = float(threshold)
            expect(slider).to_have_value(threshold)
            expect(ui.page.locator("#metrics-threshold")).to_have_text(expected["threshold"])
            for cell in ("tn", "fp", "fn", "tp"):
                expect(ui.page.locator(f"#cm-{cell}")).to_have_text(expected["confusion"][cell])
            for figure in ("sensitivity", "specificity", "accuracy"):
                expect(ui.page.locator(f"#{figure}")).to_have_text(expected[figure])
            expect(ui.page.locator("#n-validation")).to_have_text(expected["n_validation"])
            asked = [p for p in ui.guard.asked[asked_before:] if p.startswith("/metrics")]
            assert 1 <= len(asked) < presses, f"{presses} key presses sent {len(asked)} requests"
            if threshold == "0.9":
                ui.screenshot("threshold")
        ui.guard.assert_clean(ui.page)


def test_the_mark_buttons_and_the_roc_point_follow_the_api(ui: UiPage) -> None:
    default = default_threshold(ui.base)
    with docs.diagnosed(ui.guarded, "ui-marks"):
        ui.open("threshold")
        labels = ui.page.locator("#mark-buttons button").evaluate_all(
            "buttons => buttons.map(b => b.dataset.threshold)"
        )
        assert labels == [default, *[t for t in ARTICLE_THRESHOLDS if t != default]]
        for threshold in labels:
            ui.page.locator(f'#mark-buttons button[data-threshold="{threshold}"]').click()
            expected = exact(api_text(ui.base, "GET", f"metrics?threshold={threshold}"))
            expect(ui.page.locator("#metrics-threshold")).to_have_text(expected["threshold"])
            expect(ui.page.locator("#cm-fn")).to_have_text(expected["confusion"]["fn"])
            expect(
                ui.page.locator(f'#mark-buttons button[data-threshold="{threshold}"]')
            ).to_have_attribute("aria-pressed", "true")
            expect(ui.page.locator("#roc svg circle.operating-point")).to_have_count(1)
        expect(ui.page.locator("#roc-caption")).to_contain_text("does not serve the ROC curve")
        expect(ui.page.locator("#roc-caption")).to_contain_text(expected["roc_auc"])
        ui.guard.assert_clean(ui.page)


def test_the_case_is_scored_again_at_the_chosen_threshold(ui: UiPage) -> None:
    expected, _ = expected_case(ui.base, BORDERLINE, "0.9")
    with docs.diagnosed(ui.guarded, "ui-case-threshold"):
        ui.open("case")
        ui.page.locator('button[data-example="borderline"]').click()
        expect(ui.page.locator("#probability")).not_to_be_empty()
        ui.page.locator("nav a[data-view=threshold]").click()
        ui.page.locator('#mark-buttons button[data-threshold="0.9"]').click()
        ui.page.locator("nav a[data-view=case]").click()
        assert_shows_prediction(ui, expected)
        ui.guard.assert_clean(ui.page)


# -- how it is doing -------------------------------------------------------------------------
def test_monitoring_shows_the_api_or_says_honestly_there_is_nothing(ui: UiPage) -> None:
    answer = api_text(ui.base, "GET", "monitoring")
    with docs.diagnosed(ui.guarded, "ui-monitoring"):
        ui.open("monitoring")
        if answer.status_code == 404:
            expect(ui.page.locator("#monitoring-empty")).to_contain_text("nothing to show")
            expect(ui.page.locator("#monitoring-howto")).to_be_visible()
            expect(ui.page.locator("#monitoring-howto")).to_contain_text("POST feedback")
        else:
            answer.raise_for_status()
            expect(
                ui.page.locator("#monitoring-result dl, #monitoring-result table").first
            ).to_be_visible()
            assert answer.json()["cases"] == 0  # this module's service is sent no outcome
            expect(ui.page.locator("#monitoring-empty")).to_contain_text(
                "No outcome has been confirmed yet"
            )
            expect(ui.page.locator("#monitoring-howto")).to_be_visible()
        ui.screenshot("monitoring")
        ui.guard.assert_clean(
            ui.page, expected_console=[UNSEEN] if answer.status_code == 404 else []
        )


def estimate(value: float | None, lower: float | None, upper: float | None) -> dict[str, Any]:
    return {"value": value, "lower": lower, "upper": upper}


# The shape app/monitoring/figures.py writes (figures with 95% intervals, counts per class),
# served to the page by Playwright while the route is not on main; every figure is checked
# below against the page's text, so any shape of this kind is shown in full.
MONITORING_ANSWERS: Final[dict[str, dict[str, Any]]] = {
    "with cases": {
        "window": 500,
        "cumulative": {
            "n_benign": 40,
            "n_malignant": 21,
            "sensitivity": estimate(0.9523809523809523, 0.7732, 0.9915),
            "specificity": estimate(0.975, 0.8715, 0.9956),
            "roc_auc": estimate(0.99, None, None),
        },
        "validated": {
            "n_benign": 89,
            "n_malignant": 48,
            "sensitivity": estimate(0.9583333333333334, None, None),
            "specificity": estimate(0.9775280898876404, None, None),
            "roc_auc": estimate(0.9922752808988764, None, None),
        },
        "drift": {
            "bare_nuclei": {"statistic": 3.25, "threshold": 21.7, "alarm": False},
            "mitoses": {"statistic": 30.5, "threshold": 24.1, "alarm": True},
        },
        "refer_rate": estimate(0.0625, 0.03, 0.12),
    },
    "no cases": {
        "cumulative": {"n_benign": 0, "n_malignant": 0, "sensitivity": estimate(None, None, None)},
        "drift": {"mitoses": {"statistic": 1.5, "threshold": 24.1, "alarm": False}},
    },
}


def numbers_in(value: Any) -> Iterator[str]:
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield json.dumps(value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from numbers_in(item)


@pytest.mark.parametrize("case", list(MONITORING_ANSWERS))
def test_monitoring_renders_every_figure_it_is_given(ui: UiPage, case: str) -> None:
    body = json.dumps(MONITORING_ANSWERS[case])
    ui.page.route(
        "**/monitoring",
        lambda route: route.fulfill(status=200, content_type="application/json", body=body),
    )
    with docs.diagnosed(ui.guarded, f"ui-monitoring-{case.replace(' ', '-')}"):
        ui.open("monitoring")
        result = ui.page.locator("#monitoring-result")
        expect(result.locator("dl, table").first).to_be_visible()
        text = result.inner_text()
        missing = [n for n in numbers_in(MONITORING_ANSWERS[case]) if n not in text]
        assert missing == [], f"figures of /monitoring the page does not show: {missing}"
        assert "95% interval 0.7732 to 0.9915" in text or case == "no cases"
        empty = ui.page.locator("#monitoring-empty")
        if case == "no cases":
            expect(empty).to_contain_text("No outcome has been confirmed yet")
            expect(ui.page.locator("#monitoring-howto")).to_be_visible()
        else:
            expect(empty).to_have_count(0)
            expect(ui.page.locator("#monitoring-howto")).to_be_hidden()
            ui.screenshot("monitoring-figures")
        ui.guard.assert_clean(ui.page)


@pytest.fixture(scope="module")
def with_outcomes(browser: Browser, dataset: Dataset) -> Iterator[LiveServer]:
    """A service that has answered 120 cases of the data set and received their outcomes."""
    with start_server({"MONITORING_REFRESH_SECONDS": "1"}) as live:
        rows = [dict(zip(FEATURE_NAMES, map(int, r), strict=True)) for r in dataset.X[:120]]
        answer = httpx.post(f"{live.url}/predict/batch", json={"instances": rows}, timeout=30)
        request_id = answer.headers["X-Request-ID"]
        outcomes = [
            {"request_id": request_id, "row": i, "outcome": ("benign", "malignant")[int(y)]}
            for i, y in enumerate(dataset.y[:120])
        ]
        sent = httpx.post(f"{live.url}/feedback/batch", json={"outcomes": outcomes}, timeout=30)
        assert sent.status_code == 200
        yield live


def test_monitoring_shows_the_live_figures_the_api_computes(
    browser: Browser, with_outcomes: LiveServer
) -> None:
    """Against the real /monitoring after outcomes were sent: the counts and every cumulative
    figure with its interval, beside the validated ones."""
    answer = api_text(with_outcomes.url, "GET", "monitoring").json()
    with ui_page(browser, with_outcomes.url) as ui, docs.diagnosed(ui.guarded, "ui-live"):
        ui.open("monitoring")
        result = ui.page.locator("#monitoring-result")
        expect(result.locator("dl, table").first).to_be_visible()
        text = result.inner_text()
        expect(ui.page.locator("#monitoring-empty")).to_have_count(0)
        cumulative = answer["overall"]["cumulative"]
        assert cumulative["n"] == 120
        shown = [n for n in numbers_in(cumulative) if n not in text and n not in ("null",)]
        assert shown == [], f"live figures the page does not show: {shown}"
        assert json.dumps(answer["validated"]["sensitivity"]["value"]) in text
        ui.screenshot("monitoring-live")
        ui.guard.assert_clean(ui.page)


# -- many cases ------------------------------------------------------------------------------
def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.write_text("\n".join(",".join(row) for row in [header, *rows]) + "\n")
    return path


@pytest.fixture(scope="module")
def small_batches(browser: Browser) -> Iterator[LiveServer]:
    """The service with a batch limit the 683 rows exceed, so the page must send chunks."""
    with start_server({"MAX_BATCH_SIZE": str(SMALL_BATCH)}) as live:
        yield live


def test_a_csv_of_the_data_set_round_trips_to_the_batch_answers(
    browser: Browser, small_batches: LiveServer, dataset: Dataset, tmp_path: Path
) -> None:
    rows = [[str(v) for v in row] for row in dataset.X.tolist()]
    upload = write_csv(tmp_path / "cases.csv", list(FEATURE_NAMES), rows)
    base = small_batches.url
    threshold = default_threshold(base)
    expected: list[Any] = []
    for start in range(0, len(rows), SMALL_BATCH):
        instances = [
            dict(zip(FEATURE_NAMES, map(int, r), strict=True))
            for r in rows[start : start + SMALL_BATCH]
        ]
        body = {"instances": instances, "threshold": float(threshold)}
        expected += exact(api_text(base, "POST", "predict/batch", json=body))["predictions"]
    with ui_page(browser, base) as ui, docs.diagnosed(ui.guarded, "ui-batch"):
        ui.open("batch")
        ui.page.locator("#csv-file").set_input_files(upload)
        expect(ui.page.locator("#batch-status")).to_contain_text(
            f"Scored {len(rows)} of {len(rows)}"
        )
        expect(ui.page.locator("#batch-table tbody tr")).to_have_count(len(rows))
        batches = [p for p in ui.guard.asked if p == "/predict/batch"]
        assert len(batches) == math.ceil(len(rows) / SMALL_BATCH)
        with ui.page.expect_download() as download:
            ui.page.locator("#batch-download").click()
        answers = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
        assert len(answers) == len(rows)
        for line, (row, answer, want) in enumerate(
            zip(rows, answers, expected, strict=True), start=2
        ):
            assert answer["line"] == str(line)
            assert [answer[name] for name in FEATURE_NAMES] == row
            assert answer["probability"] == want["probability"], line
            assert answer["class"] == want["class"], line
            shown_set = answer["prediction_set"].split("|") if answer["prediction_set"] else []
            assert shown_set == want["prediction_set"], line
            assert answer["threshold"] == threshold
        first = ui.page.locator(
            '#batch-table tbody tr[data-line="2"] td[data-column="probability"]'
        )
        expect(first).to_have_text(expected[0]["probability"])
        expect(ui.page.locator("#batch-problems")).to_be_hidden()
        ui.guard.assert_clean(ui.page)


def test_a_batch_over_the_services_limit_shows_the_apis_refusal(
    browser: Browser, small_batches: LiveServer, tmp_path: Path
) -> None:
    """A page told a higher limit than the replica that scores (another release, say) sends a
    batch the service refuses: the page says so, with the API's own message."""
    rows = [[str(BENIGN[name]) for name in FEATURE_NAMES]] * (SMALL_BATCH + 1)
    upload = write_csv(tmp_path / "big.csv", list(FEATURE_NAMES), rows)
    body = {"instances": [BENIGN] * len(rows)}
    refusal = api_text(small_batches.url, "POST", "predict/batch", json=body)
    assert refusal.status_code == 422

    def told_more(route: Route) -> None:
        page = route.fetch().text()
        told = page.replace(f'"max_batch_size":{SMALL_BATCH}', f'"max_batch_size":{len(rows)}')
        assert told != page
        route.fulfill(status=200, content_type="text/html; charset=utf-8", body=told)

    with ui_page(browser, small_batches.url) as ui, docs.diagnosed(ui.guarded, "ui-batch-limit"):
        ui.page.route(f"{small_batches.url}/", told_more)
        ui.open("batch")
        ui.page.locator("#csv-file").set_input_files(upload)
        error = ui.page.locator("#batch-error")
        expect(error).to_contain_text(refusal.json()["message"])
        expect(error).to_contain_text(f"refused a batch of {len(rows)} rows")
        expect(error).to_contain_text(f"lines 2 to {len(rows) + 1}")
        expect(ui.page.locator("#batch-result")).to_be_hidden()
        ui.guard.assert_clean(ui.page, expected_console=["status of 422"])


BAD_LINES: Final = [
    # (line in the file, its values, what the reason must name)
    (
        3,
        ["11", "1", "1", "1", "2", "1", "3", "1", "1"],
        ["clump_thickness", "11", "outside 1 to 10"],
    ),
    (
        4,
        ["5", "1.5", "1", "1", "2", "1", "3", "1", "1"],
        ["uniformity_of_cell_size", "1.5", "not a whole number"],
    ),
    (5, ["5", "1", "1", "1", "2", "1", "3", "1"], ["8 values", "9"]),
    (6, ["5", "1", "", "1", "2", "1", "3", "1", "1"], ["uniformity_of_cell_shape", "empty"]),
    (
        7,
        ["5", "1", "1", "?", "2", "0", "3", "1", "1"],
        ["marginal_adhesion", "?", "bare_nuclei", "0"],
    ),
]


def test_a_csv_with_bad_lines_names_each_by_line_and_reason(ui: UiPage, tmp_path: Path) -> None:
    good = [str(BENIGN[name]) for name in FEATURE_NAMES]
    lines: dict[int, list[str]] = {2: good, **{line: values for line, values, _ in BAD_LINES}}
    rows = [lines[n] for n in sorted(lines)] + [[""], good]  # a blank line 8, a good line 9
    upload = write_csv(tmp_path / "bad.csv", list(FEATURE_NAMES), rows)
    with docs.diagnosed(ui.guarded, "ui-batch-bad"):
        ui.open("batch")
        ui.page.locator("#csv-file").set_input_files(upload)
        expect(ui.page.locator("#batch-status")).to_contain_text("Scored 2 of 2")
        expect(ui.page.locator("#batch-status")).to_contain_text(f"{len(BAD_LINES)} lines not sent")
        expect(ui.page.locator("#batch-status")).to_contain_text("1 blank line skipped")
        problems = ui.page.locator("#problem-list li")
        expect(problems).to_have_count(len(BAD_LINES))
        for line, _, words in BAD_LINES:
            item = ui.page.locator(f'#problem-list li[data-line="{line}"]')
            expect(item).to_contain_text(f"Line {line}:")
            for word in words:
                expect(item).to_contain_text(word)
        shown = ui.page.locator("#batch-table tbody tr").evaluate_all(
            "rows => rows.map(r => r.dataset.line)"
        )
        assert shown == ["2", "9"]
        ui.screenshot("batch")
        ui.guard.assert_clean(ui.page)


@pytest.mark.parametrize(
    ("header", "named"),
    [
        ([*FEATURE_NAMES[:-1], "mitosis"], ['unknown column "mitosis"', "missing column mitoses"]),
        ([*FEATURE_NAMES, "mitoses"], ["repeated column mitoses"]),
        (["sample_id", *FEATURE_NAMES], ['unknown column "sample_id"']),
    ],
)
def test_a_csv_with_a_wrong_header_sends_nothing_and_says_why(
    ui: UiPage, tmp_path: Path, header: list[str], named: list[str]
) -> None:
    upload = write_csv(tmp_path / "header.csv", header, [["1"] * len(header)])
    with docs.diagnosed(ui.guarded, "ui-batch-header"):
        ui.open("batch")
        ui.page.locator("#csv-file").set_input_files(upload)
        error = ui.page.locator("#batch-error")
        for text in ["Line 1, the header", *named]:
            expect(error).to_contain_text(text)
        assert "/predict/batch" not in ui.guard.asked
        ui.guard.assert_clean(ui.page)


# -- under a prefix, with a key --------------------------------------------------------------
@pytest.fixture(scope="module")
def behind_proxy(browser: Browser) -> Iterator[tuple[str, list[str]]]:
    outside: list[str] = []
    with (
        start_server({"ROOT_PATH": PREFIX}) as live,
        http_thread(prefix_proxy(live.url, outside)) as proxy,
    ):
        yield f"{proxy}{PREFIX}", outside


@pytest.mark.parametrize("slash", [True, False], ids=["prefix/", "prefix"])
def test_the_page_works_behind_a_prefix_stripping_proxy(
    browser: Browser, behind_proxy: tuple[str, list[str]], slash: bool
) -> None:
    base, outside = behind_proxy
    prediction, explanation = expected_case(base, BENIGN, default_threshold(base))
    metrics = exact(api_text(base, "GET", "metrics?threshold=0.7"))
    with ui_page(browser, base) as ui, docs.diagnosed(ui.guarded, "ui-prefix"):
        ui.open("case", slash=slash)
        assert_shows_prediction(ui, prediction)
        assert shown_contributions(ui) == explanation["contributions"]
        ui.page.locator("nav a[data-view=threshold]").click()
        ui.page.locator('#mark-buttons button[data-threshold="0.7"]').click()
        expect(ui.page.locator("#cm-tp")).to_have_text(metrics["confusion"]["tp"])
        ui.guard.assert_clean(ui.page)
        assert ui.guard.asked, "the guard saw no request"
        assert all(p.startswith(f"{PREFIX}/") or p == PREFIX for p in ui.guard.asked), (
            ui.guard.asked
        )
    assert outside == [], f"the page asked for paths outside {PREFIX}: {outside}"


@pytest.fixture(scope="module")
def keyed(browser: Browser) -> Iterator[LiveServer]:
    with start_server({"API_KEY": KEY}) as live:
        yield live


def test_with_an_api_key_the_page_shows_the_apis_401_and_then_the_answer(
    browser: Browser, keyed: LiveServer
) -> None:
    base = keyed.url
    missing = api_text(base, "POST", "predict", json=BENIGN)
    wrong = api_text(base, "POST", "predict", json=BENIGN, headers={"X-API-Key": "wrong"})
    assert (missing.status_code, wrong.status_code) == (401, 401)
    threshold = default_threshold(base)
    prediction = exact(
        api_text(
            base,
            "POST",
            "predict",
            json={**BENIGN, "threshold": float(threshold)},
            headers={"X-API-Key": KEY},
        )
    )
    with ui_page(browser, base) as ui, docs.diagnosed(ui.guarded, "ui-api-key"):
        ui.open("case")
        expect(ui.page.locator("#case-error")).to_have_text(missing.json()["message"])
        key = ui.page.locator("#api-key")
        key.fill("wrong")
        key.press("Enter")
        expect(ui.page.locator("#case-error")).to_have_text(wrong.json()["message"])
        ui.page.locator("nav a[data-view=threshold]").click()
        expect(ui.page.locator("#metrics-error")).to_have_text(wrong.json()["message"])
        ui.screenshot("api-key")
        key.fill(KEY)
        key.press("Enter")
        expect(ui.page.locator("#metrics-error")).to_be_hidden()
        expect(ui.page.locator("#metrics-result")).to_be_visible()
        ui.page.locator("nav a[data-view=case]").click()
        assert_shows_prediction(ui, prediction)
        expect(ui.page.locator("#case-error")).to_be_hidden()
        stored = ui.page.evaluate(
            "() => [sessionStorage.length, localStorage.length, document.cookie, location.href]"
        )
        assert stored[0] == 1
        assert stored[1:3] == [0, ""]
        assert KEY not in stored[3]
        ui.guard.assert_clean(ui.page, expected_console=["status of 401"])
    # The key was sent as the header, only to the service (the guard saw no other origin).
    assert KEY not in keyed.stderr()


# -- offline, accessible ---------------------------------------------------------------------
def test_the_page_cannot_reach_another_origin(ui: UiPage) -> None:
    """Beside the guard: the page's own policy stops a script's request to another host."""
    with docs.diagnosed(ui.guarded, "ui-csp"):
        ui.open("case")
        outcome = ui.page.evaluate(
            """async () => {
                try { await fetch("http://127.0.0.2:9/x"); return "sent"; }
                catch (error) { return String(error); }
            }"""
        )
        assert outcome != "sent"
        assert any("Content Security Policy" in m for m in ui.guard.console_errors), (
            ui.guard.console_errors
        )


AXE_VIEWS: Final = ["case", "threshold", "monitoring", "batch"]


def axe_violations(ui: UiPage, axe: str) -> list[dict[str, Any]]:
    ui.page.add_script_tag(content=axe)
    found: list[dict[str, Any]] = ui.page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ["violations"]})).violations
            .map(v => ({id: v.id, impact: v.impact, help: v.help,
                        nodes: v.nodes.map(n => n.target.join(" ")).slice(0, 5)}))"""
    )
    return found


@pytest.mark.parametrize("view", AXE_VIEWS)
def test_axe_finds_no_serious_or_critical_violation(
    browser: Browser, server: LiveServer, axe: str, view: str, tmp_path: Path
) -> None:
    with (
        ui_page(browser, server.url, bypass_csp=True) as ui,
        docs.diagnosed(ui.guarded, f"ui-axe-{view}"),
    ):
        ui.open(view)
        if view == "case":
            expect(ui.page.locator("#contributions tbody tr")).to_have_count(len(FEATURE_NAMES))
        elif view == "threshold":
            expect(ui.page.locator("#roc svg")).to_be_visible()
        elif view == "monitoring":
            expect(ui.page.locator("#monitoring-result")).not_to_have_text("Loading…")
        else:
            good = [str(MALIGNANT[name]) for name in FEATURE_NAMES]
            upload = write_csv(tmp_path / "a.csv", list(FEATURE_NAMES), [good, ["x"]])
            ui.page.locator("#csv-file").set_input_files(upload)
            expect(ui.page.locator("#batch-table tbody tr")).to_have_count(1)
        violations = axe_violations(ui, axe)
        severe = [v for v in violations if v["impact"] in IMPACTS]
        assert severe == [], json.dumps(severe, indent=1)
        if view == "case":
            ui.screenshot("page")
