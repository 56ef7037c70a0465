"""The record's metrics: named predictor_record_*, gauges combined across workers."""

from app.record import gauges, metrics


def test_every_metric_is_prefixed_and_every_gauge_says_how_workers_combine() -> None:
    collected = list(metrics.REGISTRY.collect())
    names = {m.name for m in collected}
    assert names == {
        "predictor_record_records_written",
        "predictor_record_rows_written",
        "predictor_record_commit_group_size",
        "predictor_record_commit_seconds",
        "predictor_record_wait_seconds",
        "predictor_record_queue_depth",
        "predictor_record_failures",
        "predictor_record_available",
    }
    assert gauges.QUEUE_DEPTH._multiprocess_mode == "livesum"
    assert gauges.AVAILABLE._multiprocess_mode == "livemin"


def test_an_unknown_failure_reason_is_counted_as_a_store_error() -> None:
    def value(reason: str) -> float:
        found = metrics.REGISTRY.get_sample_value(
            "predictor_record_failures_total", {"reason": reason}
        )
        return found or 0.0

    before = value("store_error")
    metrics.count_failure("something new")
    assert value("store_error") == before + 1
    assert value("something new") == 0.0
