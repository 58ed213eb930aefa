# labkit in a container: the capacity servers, a Locust master and Locust workers all run from this image.
#   docker build -t labkit:latest .
#   docker compose up --scale worker=4          (see docs/distributed.md)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LABKIT_SCENARIOS_DIR=/app/scenarios

WORKDIR /app
COPY pyproject.toml README.md ./
COPY labkit ./labkit
COPY scenarios ./scenarios
RUN pip install . \
    && useradd --create-home --uid 10001 labkit \
    && mkdir -p /data /results \
    && chown labkit:labkit /data /results

USER labkit
# 8000 provider, 8001 receiver, 5557 Locust master (workers connect to it), 8089 Locust web UI
EXPOSE 8000 8001 5557 8089
ENTRYPOINT ["labkit"]
CMD ["--help"]
