"""`python -m app`: serve with uvicorn, configured from the environment (see app/settings.py).

Bad settings or a bad model artifact end the process with one line on stderr, before uvicorn
starts: exit code 2 for settings, 1 for the artifact.
"""

import sys

import uvicorn

from app.predictor import ServedModel
from app.settings import SettingsError, load_settings
from model.artifact import ArtifactError

PROG = "malignancy-predictor"


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    try:
        ServedModel.load(settings.model_path)  # fail fast; each worker loads it in its lifespan
    except ArtifactError as exc:
        print(f"{PROG}: cannot load the model: {exc}", file=sys.stderr)
        return 1
    # Workers re-create the app from the import string, reading the same environment.
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        access_log=False,  # the app writes its own access log line
        lifespan="on",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
