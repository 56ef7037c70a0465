# malignancy-predictor: the FastAPI service with the committed model artifact.
#
#   docker build -t malignancy-predictor .
#   docker run --rm -p 8000:8000 malignancy-predictor
#
# Settings are environment variables (see README, "Configuration"): HOST, PORT, WORKERS,
# MODEL_PATH, LOG_LEVEL, MAX_BATCH_SIZE, MAX_BODY_BYTES, API_KEY.
# CI builds this file with buildah on a locally made Debian bookworm base instead of
# python:3.11-slim (scripts/container_check.sh), so keep every step valid on both.
FROM python:3.11-slim

# Build-time only: pip settings for the dependency layer.
ARG PIP_NO_CACHE_DIR=1
ARG PIP_DISABLE_PIP_VERSION_CHECK=1
ARG PIP_ROOT_USER_ACTION=ignore

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

WORKDIR /opt/malignancy-predictor

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

# The code and the committed artifact, owned by root and read-only for the service user.
COPY model/ model/
COPY app/ app/

ENV PYTHONPATH=/opt/malignancy-predictor \
    HOST=0.0.0.0 \
    METRICS_HOST=0.0.0.0 \
    PORT=8000 \
    WORKERS=1 \
    MODEL_PATH=/opt/malignancy-predictor/model/weights.json

USER 10001:10001

EXPOSE 8000

# No curl in slim images: ask /health with the standard library (any non-2xx or error -> exit 1).
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/health', timeout=4)"]

CMD ["python", "-m", "app"]
