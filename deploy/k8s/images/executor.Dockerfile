# The executor's image for Kubernetes: the services' image plus bubblewrap (the bwrap
# sandbox backend) and util-linux (setpriv, unshare) with mount, which it runs.
#   docker build -f deploy/k8s/images/executor.Dockerfile -t coderm-executor:latest .
# (after docker build -f deploy/docker/Dockerfile -t coderm:latest .)
ARG BASE=coderm:latest
FROM ${BASE}
USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap util-linux mount \
    && rm -rf /var/lib/apt/lists/*
USER 10001
