# syntax=docker/dockerfile:1
#
# One image for every Shears role: the API (default CMD), the Celery worker
# (`shears worker`) and the one-off migration (`shears db upgrade`).
#
#   docker build -t shears .
#   docker run --rm -p 8000:8000 shears          # API only; set SHEARS_DATABASE_URL / SHEARS_BROKER_URL

ARG PYTHON_IMAGE=python:3.11-slim

# ---- build: install the project and its dependencies into a virtualenv ----
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY . .

# Non-editable install (the `ops` extra adds Flower, no dev extras): the package, its console script and the
# Alembic migrations (package-data) all land in /opt/venv/site-packages, so the
# runtime stage needs no source tree. The cache mount keeps pip's downloads
# (TensorFlow is large) across rebuilds without adding them to a layer.
# `--build-arg EXTRAS=ops,mcu,parquet` adds pyarrow (about 170 MB) for Parquet dataset uploads.
ARG EXTRAS=ops,mcu
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install ./client ".[${EXTRAS}]" \
 && shears --help > /dev/null

# ---- runtime ----
FROM ${PYTHON_IMAGE}

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    SHEARS_DATA_DIR=/data

# bubblewrap runs each engine and upload check in namespaces of its own (contract.jail); strict
# refuses to run them at a lower level. The container must allow user namespaces and a fresh /proc:
# see the security_opt of docker-compose.yml (unverified here: no Docker engine where this was written).
RUN apt-get update \
 && apt-get install -y --no-install-recommends bubblewrap \
 && rm -rf /var/lib/apt/lists/*
ENV SHEARS_SANDBOX=strict

# Unprivileged user; /data (scratch, or the local artifact folder when no S3 store is set) is
# created here owned by it, so an empty named volume mounted there inherits that ownership.
# Not being root, the worker cannot give each engine a uid of its own (SHEARS_SANDBOX_UIDS needs
# root): an engine is uid 10001 outside its user namespace, and only its view (the read-only
# runtime and its job folder) keeps the worker's files from it; `shears sandbox-check` shows that
# (own_files_as_worker_uid, find_worker_files). A root worker here would be worse: the container
# runs with seccomp, AppArmor and /proc masking off so that bubblewrap can work.
RUN groupadd --system --gid 10001 shears \
 && useradd --system --uid 10001 --gid shears --create-home --home-dir /home/shears \
        --shell /usr/sbin/nologin shears \
 && mkdir -p /data \
 && chown shears:shears /data

COPY --from=build /opt/venv /opt/venv

USER shears
WORKDIR /home/shears

EXPOSE 8000

# Liveness of the API process only (readiness, with database and broker, is /readyz).
# Same image runs the worker and the migration: docker-compose.yml overrides or
# disables this check for those roles.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["shears", "serve", "--host", "0.0.0.0", "--port", "8000", "--no-worker"]
