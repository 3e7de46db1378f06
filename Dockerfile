# The partnerctl image for deploy/: the reconcile loop and the gateway. Runs as a non-root user on a
# read-only root filesystem (state under PARTNERCTL_HOME, a mounted volume).
FROM python:3.11-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY reconciler ./reconciler
RUN pip install --no-cache-dir . && rm -rf /src
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /tmp partnerctl
USER 10001:10001
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
ENTRYPOINT ["partnerctl"]
