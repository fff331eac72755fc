# syntax=docker/dockerfile:1
# The MASH Broker image: `mash serve` (the gate replicas and the web pages) and every other `mash` command.
# Two stages: the first builds the wheel, the second installs it into a venv on a clean slim base, so the
# final image holds no build tools, no source tree and no pip inside the venv. See deploy/README.md.
#
#   docker build -t mash-broker:0.1.0 .
#   docker run --rm mash-broker:0.1.0 --help

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------------- build
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
RUN python -m pip install --no-cache-dir build==1.2.2.post1
COPY pyproject.toml README.md ./
COPY mash_broker ./mash_broker
RUN python -m build --wheel --outdir /dist .

# -------------------------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="mash-broker" \
      org.opencontainers.image.description="Multi-agency safeguarding information broker: consent gate, audited ledger, Kafka" \
      org.opencontainers.image.licenses="Apache-2.0"

# One numeric user and group, no login shell, no home of interest: Kubernetes' runAsNonRoot can check a
# numeric UID, and the same UID owns the secret files an operator mounts under compose (deploy/README.md).
ARG MASH_UID=10001
RUN groupadd --system --gid "${MASH_UID}" mash \
 && useradd --system --uid "${MASH_UID}" --gid mash --no-create-home --home-dir /var/lib/mash \
      --shell /usr/sbin/nologin mash \
 && mkdir -p /var/lib/mash \
 && chown mash:mash /var/lib/mash

# The wheel from the build stage, installed into a venv that has no pip of its own (the base image's pip
# installs into it); dependencies are all binary wheels on PyPI, so no compiler is needed here.
RUN --mount=type=bind,from=build,source=/dist,target=/dist \
    python -m venv --without-pip /opt/mash \
 && python -m pip --python /opt/mash/bin/python install --no-cache-dir --no-compile /dist/mash_broker-*.whl \
 && /opt/mash/bin/python -m compileall -q /opt/mash/lib

ENV PATH=/opt/mash/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MASH_DATA_DIR=/var/lib/mash \
    MASH_LOG_JSON=true \
    MASH_HEALTH_PORT=8081 \
    MASH_WEB_PORT=8080

USER 10001:10001
WORKDIR /var/lib/mash
EXPOSE 8080 8081

# `mash serve`'s health port (MASH_HEALTH_PORT): /healthz answers while the process lives. The web pages'
# container overrides this to check MASH_WEB_PORT (deploy/compose/compose.yaml); no curl in a slim image.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('MASH_HEALTH_PORT', '8081'), timeout=4)"]

ENTRYPOINT ["mash"]
CMD ["serve"]
