# syntax=docker/dockerfile:1
# aion-ingest: the coordinator and the worker in one image (the chart runs both).
#
# Built from a wheelhouse made on the build host (scripts/wheelhouse.sh: the project's wheel
# and every locked dependency, hash-checked against requirements/*.txt): the build installs
# with --no-index, needs no network, and the same lock gives the same venv. Targets:
#   runtime (the default, last)  production: no sandbox, no compiler, no pip cache, no sources
#   sandbox                      runtime plus the sandbox extra, for staging clusters and demos
# `make image` fills the wheelhouse and builds with docker, podman or buildah.

# The base, pinned by digest (bump tag and digest together). A machine that cannot pull it
# passes its own: `make image BASE=local` makes one with debootstrap (scripts/image-base.sh).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

FROM ${PYTHON_IMAGE} AS venv
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels
COPY requirements/main.txt requirements/sandbox.txt /requirements/
COPY .wheelhouse/deps/ /wheels/
# A venv without pip: the base's pip installs into it (--python), so none ships in the venv.
# The lock is the whole closure (pip refuses an unhashed or missing dependency).
RUN python -m venv --without-pip /opt/aion-ingest \
    && python -m pip --python /opt/aion-ingest/bin/python install --require-hashes -r /requirements/main.txt
# The project's wheel in a layer of its own: a change of code leaves the layer above cached.
COPY .wheelhouse/project/ /project/
RUN python -m pip --python /opt/aion-ingest/bin/python install --no-deps /project/aion_ingest-*.whl \
    && python -m pip --python /opt/aion-ingest/bin/python check

FROM venv AS venv-sandbox
RUN python -m pip --python /opt/aion-ingest/bin/python install --require-hashes -r /requirements/sandbox.txt \
    && python -m pip --python /opt/aion-ingest/bin/python check

FROM ${PYTHON_IMAGE} AS base
ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="aion-ingest" \
      org.opencontainers.image.description="Bulk ingestion of S3 objects into the Aionvision Uploads API on Kubernetes Indexed Jobs" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/aionvision/aion-ingest" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"
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

# `aion-ingest sandbox` for staging clusters: --target sandbox.
FROM base AS sandbox
COPY --from=venv-sandbox /opt/aion-ingest /opt/aion-ingest

FROM base AS runtime
COPY --from=venv /opt/aion-ingest /opt/aion-ingest
