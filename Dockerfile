# canaryflow: one image for the gateway, the worker, the simulator and the load generator.
#   docker build -t canaryflow .
#   docker run --rm canaryflow --help
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first (cached while only the code changes), then the code.
COPY pyproject.toml README.md ./
COPY canaryflow ./canaryflow
COPY workflows ./workflows
COPY activities ./activities
COPY worker.py ./
# Example and demo configs (the compose `demo` profile pushes them).
COPY examples ./examples
COPY deploy/demo ./deploy/demo
RUN pip install . \
 && useradd --create-home --uid 10001 --user-group canaryflow

USER canaryflow
# gateway, simulator
EXPOSE 8080 8091
ENTRYPOINT ["canaryflow"]
CMD ["--help"]
