"""The docs' example convention as tests/system/docs/examples.py reads and compares it."""

from typing import Any

import pytest

from tests.system.docs.examples import Block, agrees, curl_example, needs_tolerance

BATCH_OF_TWO = '{"instances": [{"a": 1}, {"a": 2}]}'
V2_OF_ONE = '{"inputs": [{"name": "scores", "shape": [1, 9], "data": [1]}]}'
V2_OF_TWO = '{"inputs": [{"name": "scores", "shape": [2, 9], "data": [1]}]}'


def block(text: str, title: str = "") -> Block:
    return Block(source="docs/x.md:1", lang="console", title=title, text=text)


@pytest.mark.parametrize(
    ("shown", "actual", "tolerance", "shortened", "expected"),
    [
        ({"p": 0.1, "c": "b"}, {"p": 0.1, "c": "b"}, 0.0, False, True),
        ({"p": 0.1}, {"p": 0.1000000000000001}, 0.0, False, False),
        ({"p": 0.1}, {"p": 0.1000000000000001}, 1e-15, False, True),
        ({"p": 0.1}, {"p": 0.100000000000002}, 1e-15, False, False),
        ({"z": -4.733682897039593}, {"z": -4.73368289703959}, 1e-15, False, True),
        ({"p": 1}, {"p": 1.0}, 0.0, False, False),  # a type change is a change
        ({"p": 0.1}, {"p": 0.1, "extra": 1}, 0.0, False, False),
        ({"p": 0.1}, {"p": 0.1, "extra": 1}, 0.0, True, True),
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}, 0.0, False, False),  # the order a reader sees
        ({"l": [1, 2]}, {"l": [1, 2, 3]}, 0.0, True, False),  # a list is never shortened
        ({"p": None}, {"p": 0.0}, 1e-15, False, False),
    ],
)
def test_agrees(shown: Any, actual: Any, tolerance: float, shortened: bool, expected: bool) -> None:
    assert agrees(shown, actual, tolerance, shortened) is expected


def test_a_console_block_splits_into_command_and_answer() -> None:
    example = curl_example(
        block(
            '$ curl -s http://127.0.0.1:8000/predict \\\n  -d \'{"a": 1}\'\n{"ok":true}\n',
            title="shortened, checked to 1e-15",
        )
    )
    assert example.command == "curl -s http://127.0.0.1:8000/predict \\\n  -d '{\"a\": 1}'"
    assert example.shown == '{"ok":true}'
    assert example.path == "/predict"
    assert example.body() == {"a": 1}
    assert example.shortened
    assert example.tolerance == 1e-15


@pytest.mark.parametrize(
    "text",
    [
        "curl -s http://127.0.0.1:8000/health\n{}\n",
        "$ curl -s http://127.0.0.1:8000/health\n",
        "$ wget -qO- http://127.0.0.1:8000/health\n{}\n",
    ],
    ids=["no prompt", "no answer", "no curl"],
)
def test_a_malformed_console_block_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"docs/x\.md:1"):
        curl_example(block(text))


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        ("/predict", '{"a": 1}', False),
        ("/predict/batch", '{"instances": [{"a": 1}]}', False),
        ("/predict/batch", BATCH_OF_TWO, True),
        ("/v2/models/m/infer", V2_OF_ONE, False),
        ("/v2/models/m/infer", V2_OF_TWO, True),
        ("/explain", '{"a": 1}', True),
    ],
)
def test_which_examples_go_through_blas(path: str, body: str, expected: bool) -> None:
    example = curl_example(block(f"$ curl -s http://127.0.0.1:8000{path} -d '{body}'\n{{}}\n"))
    assert needs_tolerance(example) is expected


def test_a_binary_requests_rows_come_from_its_json_header() -> None:
    header = '{"inputs":[{"name":"scores","shape":[2,9],"datatype":"UINT8"}]}'
    example = curl_example(
        block(
            f"$ printf '%s\\x05' '{header}' \\\n"
            "  | curl -s http://127.0.0.1:8000/v2/models/m/infer --data-binary @-\n{}\n"
        )
    )
    assert example.body() == {"inputs": [{"name": "scores", "shape": [2, 9], "datatype": "UINT8"}]}
    assert needs_tolerance(example)
