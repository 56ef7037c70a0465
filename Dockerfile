# malignancy-predictor: the FastAPI service with the committed model artifact.
#
#   docker build -t malignancy-predictor .
#   docker run --rm -p 8000:8000 malignancy-predictor
#
# Settings are environment variables (see docs/configuration.md): HOST, PORT, WORKERS,
# MODEL_PATH, LOG_LEVEL, MAX_BATCH_SIZE, MAX_BODY_BYTES, API_KEY.
# CI builds this file with buildah on a locally made Debian bookworm base instead of
# python:3.11-slim (scripts/container_check.sh), so keep every step valid on both. buildah's
# --from replaces the first FROM only: every other stage starts FROM base.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

WORKDIR /opt/malignancy-predictor

# ---- the package's own wheel, built apart: its build tools never reach the served image.
FROM base AS wheel

ARG PIP_NO_CACHE_DIR=1
ARG PIP_DISABLE_PIP_VERSION_CHECK=1
ARG PIP_ROOT_USER_ACTION=ignore

# The build backend from its own hashed lock (requirements/build.txt), not fetched unpinned.
COPY requirements/build.txt requirements/build.txt
RUN python -m venv /opt/build \
    && /opt/build/bin/python -m pip install --require-hashes --only-binary=:all: \
        -r requirements/build.txt

COPY pyproject.toml README.md ./
COPY model/ model/
COPY app/ app/
RUN /opt/build/bin/python -m pip wheel --no-deps --no-build-isolation --no-index \
        --wheel-dir /wheels .

# ---- the served image
FROM base

# Build-time only: pip settings for the dependency layer.
ARG PIP_NO_CACHE_DIR=1
ARG PIP_DISABLE_PIP_VERSION_CHECK=1
ARG PIP_ROOT_USER_ACTION=ignore

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# Runtime dependencies only, pinned with hashes, in their own layer: a code change does not
# reinstall them. Wheels only, so the slim image needs no compiler.
COPY requirements/runtime.txt requirements/runtime.txt
RUN python -m venv "$VIRTUAL_ENV" \
    && "$VIRTUAL_ENV/bin/python" -m pip install --require-hashes --only-binary=:all: \
        -r requirements/runtime.txt

# An unprivileged user with a fixed numeric id (so runAsNonRoot policies can verify it).
RUN groupadd --gid 10001 predictor \
    && useradd --uid 10001 --gid predictor --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin predictor

# The package itself, installed (so its metadata gives the service its version: GET /v2,
# openapi.json, the docs page), without dependencies: the lock above is all it runs on. Owned by
# root, read-only for the service user.
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    "$VIRTUAL_ENV/bin/python" -m pip install --no-deps --no-index /wheels/*.whl

# The committed artifact at the path MODEL_PATH names (the package carries the same bytes).
COPY model/weights.json model/weights.json

# The record of predictions (SQLite) lives on a volume: the root file system is read-only where
# the service runs. Replicas share one record only through PostgreSQL (DATABASE_URL).
RUN install -d -o 10001 -g 10001 -m 0700 /var/lib/malignancy-predictor/record
VOLUME /var/lib/malignancy-predictor/record

ENV HOST=0.0.0.0 \
    METRICS_HOST=0.0.0.0 \
    PORT=8000 \
    WORKERS=1 \
    MODEL_PATH=/opt/malignancy-predictor/model/weights.json \
    RECORD_DIR=/var/lib/malignancy-predictor/record

USER 10001:10001

EXPOSE 8000

# No curl in slim images: ask /health with the standard library (any non-2xx or error -> exit 1).
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/health', timeout=4)"]

CMD ["python", "-m", "app"]
