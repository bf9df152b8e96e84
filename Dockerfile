# The training/step image: runs model_factory's steps (dagster-k8s starts one pod per step).
# Hardened: base pinned by digest, dependencies only from the hashed lock, no pip, no shell extras,
# a non-root user, nothing fetched at run time. Checked statically by `z4 ci-gate` (dockerfile gate).
#
# Build (needs the CPU torch wheel in ./wheels/, e.g. `cp /opt/wheels/torch-2.13.0+cpu-*.whl wheels/`;
# its sha256 is checked against requirements.lock like every other package):
#   docker build -t z4-step .
# Run with no network: `docker run --network none ...`; on Kubernetes, a NetworkPolicy that denies
# egress except to the run's MLflow and Dagster storage. The deployer references the image by
# digest and passes the same digest in Z4_CONTAINER_DIGEST, which provenance records.
#
# python:3.11-slim, multi-arch index digest. It could not be pulled or re-resolved on the machine
# this was written on (no registry there); refresh with `docker buildx imagetools inspect
# python:3.11-slim` and update both FROM lines together.

FROM python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7 AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY requirements.lock ./
COPY wheels/ /wheels/
# The lock is the full dependency closure: --no-deps installs exactly it, every file hash-checked.
RUN python -m venv /opt/z4 \
 && /opt/z4/bin/python -m pip install --no-cache-dir --require-hashes --no-deps --find-links /wheels \
      -r requirements.lock
COPY pyproject.toml README.md ./
COPY z4_assets/ z4_assets/
RUN /opt/z4/bin/python -m pip install --no-cache-dir --no-deps --no-index --no-build-isolation . \
 && /opt/z4/bin/python -m pip uninstall --yes pip

FROM python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7
# No package manager run here: nothing beyond the slim base's own files plus the locked venv.
RUN python -m pip uninstall --yes pip setuptools wheel \
 && groupadd --system --gid 10001 z4 \
 && useradd --system --uid 10001 --gid z4 --home-dir /home/z4 --create-home --shell /usr/sbin/nologin z4
COPY --from=build /opt/z4 /opt/z4
COPY requirements.lock /opt/z4/requirements.lock
ENV PATH=/opt/z4/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_INDEX=1 \
    Z4_ENV_LOCK=/opt/z4/requirements.lock \
    DAGSTER_HOME=/home/z4
WORKDIR /home/z4
USER 10001:10001
CMD ["z4", "--help"]
