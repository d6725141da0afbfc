# syntax=docker/dockerfile:1
#
# One image for every process of the product. The command picks the process:
#   python -m collector | billing | control | payments | gateway   (cluster mode)
#   python -m simulator ...                                         (field simulator)
#   python -m standalone                                            (everything in one process)
#   python -m standalone.seed ...                                   (one-shot demo data)
# docker-compose.yml and deploy/k8s/ set it per service; the default is standalone.
#
# Build:  docker build -t prepaid-metering:0.1.0 .
# Network is used only while building (PyPI and Debian packages, default indexes);
# the running container downloads nothing.

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: install the project and its pinned dependencies into a virtualenv ------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first (a layer that only changes with pyproject.toml or constraints.txt),
# every version held by constraints.txt.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt

# Then the project itself: a regular (not editable) install, so that the runtime stage
# needs the virtualenv only, not the source tree.
COPY README.md ./
COPY libs ./libs
COPY services ./services
RUN pip install --no-deps -c constraints.txt . \
    && pip check

# --- runtime -------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# tini as PID 1: forwards SIGTERM to the Python process (graceful shutdown) and reaps zombies.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*

# A fixed numeric uid/gid so that Kubernetes can enforce runAsNonRoot.
RUN groupadd --system --gid 10001 prepaid \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin prepaid \
    && mkdir -p /app/data \
    && chown -R 10001:10001 /app

COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PREPAID_LOG_FORMAT=json \
    PREPAID_DATA_DIR=/app/data

WORKDIR /app
USER 10001:10001

# 8000 gateway / standalone; 8101-8105 the services' internal APIs; 9100 the gateway's
# metrics; 9502 the collector's listener where DTUs dial in; 15020+ the simulator.
EXPOSE 8000 8101 8102 8103 8104 8105 9100 9502

# No HEALTHCHECK here: each process listens on its own port (and the simulator speaks
# Modbus, not HTTP), so compose and Kubernetes define the probe per service on /healthz.
ENTRYPOINT ["tini", "--"]
CMD ["python", "-m", "standalone"]
