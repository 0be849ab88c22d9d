# syntax=docker/dockerfile:1
# aion-ingest: the coordinator and the worker in one image (the chart runs both).
# Stage 1 builds the wheel; stage 2 installs it into a venv; the final stage copies only
# the venv: no compiler, no pip cache, no sources.

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md ./
COPY ingest ./ingest
RUN python -m pip wheel --no-deps --wheel-dir /wheels .

FROM ${PYTHON_IMAGE} AS venv
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
# The sandbox extra serves `aion-ingest sandbox` for staging clusters and demos.
RUN python -m venv /opt/aion-ingest \
    && wheel="$(echo /wheels/aion_ingest-*.whl)" \
    && /opt/aion-ingest/bin/pip install "${wheel}[sandbox]"

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="aion-ingest" \
      org.opencontainers.image.description="Bulk ingestion of S3 objects into the Aionvision Uploads API on Kubernetes Indexed Jobs" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/aionvision/aion-ingest" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.11-slim-bookworm"
COPY --from=venv /opt/aion-ingest /opt/aion-ingest
ENV PATH=/opt/aion-ingest/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# A fixed numeric user, so Kubernetes can check runAsNonRoot without a passwd lookup.
RUN groupadd --system --gid 10001 ingest \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin ingest
USER 10001:10001
WORKDIR /tmp
ENTRYPOINT ["aion-ingest"]
CMD ["--help"]
