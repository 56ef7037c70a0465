"""Logging setup: the service's logs ("app.*") on stderr, in one line layout."""

import logging
import sys
from typing import Final

LOGGER_NAME: Final = "app"
HANDLER_NAME: Final = "malignancy-predictor"
FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str) -> None:
    """Send the service's logs ("app.*") to stderr at `level`; silence uvicorn's access log,
    which the AccessLog middleware replaces. Safe to call more than once."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level.upper())
    logger.propagate = False
    if not any(handler.name == HANDLER_NAME for handler in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.name = HANDLER_NAME
        handler.setFormatter(logging.Formatter(FORMAT))
        logger.addHandler(handler)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
