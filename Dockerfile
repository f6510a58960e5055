# The ray-aiops image for docker-compose (and a base for the KubeRay image): the package and
# serve_config.yaml on Python 3.11, run as the unprivileged user aiops (uid 1000).
FROM python:3.11-slim

RUN useradd --create-home --uid 1000 --shell /usr/sbin/nologin aiops \
    && install -d -o aiops -g aiops /home/aiops/data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY core ./core
COPY config ./config
COPY adapters ./adapters
COPY actors ./actors
COPY deployments ./deployments
COPY serve_config.yaml ./
COPY deploy/compose/entrypoint.sh ./deploy/compose/entrypoint.sh
RUN pip install --no-cache-dir . && chmod 0755 /app/deploy/compose/entrypoint.sh

USER 1000:1000
ENV PYTHONUNBUFFERED=1 RAY_USAGE_STATS_ENABLED=0 HOME=/home/aiops
EXPOSE 8000 8265
ENTRYPOINT ["/app/deploy/compose/entrypoint.sh"]
