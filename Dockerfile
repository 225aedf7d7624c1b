# syntax=docker/dockerfile:1
# Two images from one file (the service is the default, last stage):
#   docker build -t digits:1.0.0 .                          # the inference service
#   docker build --target trainer -t digits-trainer:1.0.0 . # the training job (TensorFlow)
# tests/deploy/test_dockerfile.py lints this file and replays the service stages in a
# venv (no Docker engine needed): keep every RUN free of literal absolute paths.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- service-build: the service's virtual environment, serve extra only --------------
FROM ${PYTHON_IMAGE} AS service-build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv
ENV PATH="$VIRTUAL_ENV/bin:$PATH"
RUN python -m venv "$VIRTUAL_ENV"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
# No TensorFlow, no trainer: the serving image holds only what `serve` needs.
RUN pip install --no-cache-dir "./[serve]"

# --- trainer: `python -m trainer --out /models`, run as a Kubernetes Job -------------
FROM ${PYTHON_IMAGE} AS trainer
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    HOME=/tmp
ENV PATH="$VIRTUAL_ENV/bin:$PATH"
RUN python -m venv "$VIRTUAL_ENV"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
COPY trainer ./trainer
RUN pip install --no-cache-dir "./[train]"
WORKDIR /work
USER 10001:10001
ENTRYPOINT ["python", "-m", "trainer"]
CMD ["--out", "/models"]

# --- service: slim runtime, committed model baked in, non-root -----------------------
FROM ${PYTHON_IMAGE} AS service
ENV VIRTUAL_ENV=/opt/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DIGITS_HOST=0.0.0.0 \
    DIGITS_PORT=8000
ENV PATH="$VIRTUAL_ENV/bin:$PATH"
COPY --from=service-build /opt/venv /opt/venv
WORKDIR /app
# Only what is served: the card and the .tflite files it lists (not the .h5 or plots).
COPY models/model.json models/*.tflite ./models/
# A numeric user, so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 10001:10001
EXPOSE 8000
# No curl in a slim image: Python itself asks /healthz.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('DIGITS_PORT', '8000')}/healthz\", timeout=2)"]
CMD ["python", "-m", "service"]
