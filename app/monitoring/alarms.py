"""The alarms on the monitoring figures: one definition for the Prometheus rules and for Python.

Each figure alarm compares one bound of a figure's 95% interval over the recent window with a
limit, so that it fires when the figure is off by more than chance explains, not when it merely
looks low:

- sensitivity: its upper bound below SENSITIVITY_TARGET (the service misses more malignancies
  than the target allows, even at the most favourable end of the interval);
- coverage of each class's prediction sets: the upper bound below COVERAGE_FLOOR, one point
  under 1 - alpha at the default confidence (0.95). At exactly 1 - alpha the upper bound itself
  would fire on 3.2% of windows of 200 cases from the data set, above the 2.5% a one-sided bound
  promises: the benign rows' coverage there is 0.9505, Wilson's one-sided level is approximate,
  and cross-conformal sets promise 1 - alpha only approximately. (The lower bound is below
  1 - alpha whenever the coverage is near its promise, so that bound would always fire);
- calibration intercept: the interval wholly above INTERCEPT_LIMIT or wholly below its negative
  (in log-odds: events more or less frequent than predicted);
- calibration slope: the interval wholly below SLOPE_LOW (predictions too extreme) or wholly
  above SLOPE_HIGH (too timid).

The limits leave room for what this data set does with no shift at all: over windows of 200
cases drawn from it, the intercept's interval reaches from about -1.4 to 1.0 and the slope's
estimate from 0.8 to 2.3 (scripts/monitoring_simulation.py measures each alarm's false-alarm
rate). The generated rules files are deploy/prometheus/rules.yml and
deploy/kubernetes/monitoring/prometheusrule.yaml (scripts/monitoring_rules.py).
"""

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from app.monitoring.figures import Figures

SENSITIVITY_TARGET: Final = 0.90
COVERAGE_FLOOR: Final = 0.94  # 1 - alpha at the default confidence (0.95), less a point
INTERCEPT_LIMIT: Final = 0.5
SLOPE_LOW: Final = 0.7
SLOPE_HIGH: Final = 1.5
WINDOW: Final = "recent"

_OPS: Final[dict[str, Callable[[float, float], bool]]] = {"<": operator.lt, ">": operator.gt}


@dataclass(frozen=True)
class FigureAlarm:
    alert: str
    figure: str
    bound: str  # lower or upper
    op: str  # < or >
    limit: float
    summary: str

    def selector(self) -> str:
        return (
            f'predictor_monitoring_figure{{figure="{self.figure}",window="{WINDOW}",'
            f'bound="{self.bound}"}}'
        )

    def expr(self) -> str:
        return f"{self.selector()} {self.op} {self.limit:g}"

    def fires(self, figures: Figures) -> bool:
        """What the rule computes, on figures in process (an undefined bound never fires)."""
        estimate = figures.estimates()[self.figure]
        value = estimate.lower if self.bound == "lower" else estimate.upper
        return value is not None and _OPS[self.op](value, self.limit)


FIGURE_ALARMS: Final = (
    FigureAlarm(
        "PredictorSensitivityBelowTarget",
        "sensitivity",
        "upper",
        "<",
        SENSITIVITY_TARGET,
        "Sensitivity's 95% upper bound over the recent confirmed cases is below the target.",
    ),
    FigureAlarm(
        "PredictorCoverageBenignBelowTarget",
        "coverage_benign",
        "upper",
        "<",
        COVERAGE_FLOOR,
        "Benign cases' prediction sets cover them less often than promised (upper bound).",
    ),
    FigureAlarm(
        "PredictorCoverageMalignantBelowTarget",
        "coverage_malignant",
        "upper",
        "<",
        COVERAGE_FLOOR,
        "Malignant cases' prediction sets cover them less often than promised (upper bound).",
    ),
    FigureAlarm(
        "PredictorCalibrationInterceptHigh",
        "calibration_intercept",
        "lower",
        ">",
        INTERCEPT_LIMIT,
        "Malignancies are more frequent than the probabilities say (intercept interval high).",
    ),
    FigureAlarm(
        "PredictorCalibrationInterceptLow",
        "calibration_intercept",
        "upper",
        "<",
        -INTERCEPT_LIMIT,
        "Malignancies are less frequent than the probabilities say (intercept interval low).",
    ),
    FigureAlarm(
        "PredictorCalibrationSlopeLow",
        "calibration_slope",
        "upper",
        "<",
        SLOPE_LOW,
        "The probabilities are too extreme for the outcomes (slope interval below bound).",
    ),
    FigureAlarm(
        "PredictorCalibrationSlopeHigh",
        "calibration_slope",
        "lower",
        ">",
        SLOPE_HIGH,
        "The probabilities are too timid for the outcomes (slope interval above bound).",
    ),
)


def firing(figures: Figures) -> list[FigureAlarm]:
    return [alarm for alarm in FIGURE_ALARMS if alarm.fires(figures)]
