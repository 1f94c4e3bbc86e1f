# The generator's image with vLLM for GPU nodes (overlays/gpu):
#   docker build -f deploy/k8s/images/vllm.Dockerfile --build-arg VLLM="vllm>=0.32,<0.33" \
#       -t coderm-vllm:0.32 .
# (after docker build -f deploy/docker/Dockerfile -t coderm:latest .)
ARG BASE=coderm:latest
FROM ${BASE}
ARG VLLM="vllm>=0.32,<0.33"
USER root
RUN pip install "${VLLM}"
USER 10001
