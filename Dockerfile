# syntax=docker/dockerfile:1
# The sre-agent image: the agent with its sql, s3 and kubernetes extras, run as nobody (65534).
#
#   docker build -t ghcr.io/example/sre-agent:0.1.0 .
#
# The tag is the agent's version (agent/__init__.py), which is also the Helm chart's appVersion:
# helm/sre-agent runs this image by default. It works with a read-only root filesystem: the only
# paths it writes are the state directory (/var/lib/sre-agent, a volume) and /tmp (the chart
# mounts an emptyDir there). With no config mounted it runs the embedded quickstart; the chart
# passes its ConfigMap through SRE_AGENT_CONFIG.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY agent ./agent
COPY checks ./checks
COPY examples/quickstart.yaml ./examples/quickstart.yaml
RUN pip wheel --wheel-dir /wheels ".[sql,s3,kubernetes]"

FROM python:3.11-slim
LABEL org.opencontainers.image.title="sre-agent" \
      org.opencontainers.image.description="Health, SLO, backup, freshness and Kubernetes checks with durable alert routing" \
      org.opencontainers.image.source="https://github.com/example/sre-agent" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels "sre-agent[sql,s3,kubernetes]" \
 && mkdir -p /var/lib/sre-agent /etc/sre-agent \
 && chown 65534:65534 /var/lib/sre-agent \
 && chmod 0750 /var/lib/sre-agent
COPY runbooks /usr/share/sre-agent/runbooks
WORKDIR /var/lib/sre-agent
USER 65534:65534
VOLUME ["/var/lib/sre-agent"]
EXPOSE 9108
ENTRYPOINT ["sre-agent", "run"]
