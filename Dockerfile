# opsbot image: `opsbot serve` on port 3000, migrations run by the entrypoint first.
#
# Two stages: the build stage installs the package and its dependencies into a
# virtualenv, pinned by requirements.lock used as pip constraints; the runtime stage
# copies only that virtualenv onto a fresh slim base and runs as a non-root user.
# tests/infra/test_infra_dockerfile.py replays the build stage's pip commands in a fresh
# virtualenv and starts the result (no Docker engine is needed for that test).

# Both stages use the same base, pinned by its multi-platform index digest so a build
# is reproducible; Dependabot (.github/dependabot.yml) proposes the new digest when the
# tag moves.
FROM python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /venv
ENV PATH=/venv/bin:$PATH

WORKDIR /src
COPY pyproject.toml requirements.lock README.md ./
COPY bot ./bot
COPY handlers ./handlers
RUN pip install --constraint requirements.lock .


FROM python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b

LABEL org.opencontainers.image.title="opsbot" \
      org.opencontainers.image.description="Chat-ops bot for incidents and releases" \
      org.opencontainers.image.licenses="Apache-2.0"

# The commit the image is built from (docker build --build-arg OPSBOT_BUILD_COMMIT=<sha>),
# shown by opsbot_build_info and /opsbot status.
ARG OPSBOT_BUILD_COMMIT=unknown
# JSON log lines and GET /metrics on 9100 (docs/operations.md).
ENV PATH=/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=3000 \
    OPSBOT_LOG_FORMAT=json \
    OPSBOT_METRICS_PORT=9100 \
    OPSBOT_BUILD_COMMIT=$OPSBOT_BUILD_COMMIT

RUN groupadd --system --gid 10001 opsbot \
 && useradd --system --uid 10001 --gid opsbot --home-dir /nonexistent --shell /usr/sbin/nologin opsbot

COPY --from=build /venv /venv
# Amazon RDS's CA bundle (every commercial region), pinned by its SHA-256: libpq verifies
# the database's certificate and host name with it (DATABASE_URL's sslmode=verify-full,
# sslrootcert=/etc/ssl/certs/rds-global-bundle.pem; infra/modules/database-login). When
# AWS publishes a new bundle the build fails here until the pin is updated by hand.
#checkov:skip=CKV_DOCKER_4:ADD fetches a remote file and checks its SHA-256 (--checksum); COPY cannot fetch.
ADD --chmod=0444 --checksum=sha256:e5bb2084ccf45087bda1c9bffdea0eb15ee67f0b91646106e466714f9de3c7e3 \
    https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem /etc/ssl/certs/rds-global-bundle.pem
COPY --chmod=0755 infra/docker/entrypoint.sh /usr/local/bin/opsbot-entrypoint

USER 10001:10001
WORKDIR /tmp
# On ECS the root filesystem is read-only and /tmp is the task's scratch volume; declaring
# it here makes Fargate create that volume with the image's /tmp permissions (1777), so
# the non-root user can write the config file and temporary files there.
VOLUME ["/tmp"]
EXPOSE 3000

# No curl in slim images: Python does the check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3000'), timeout=3)"]

ENTRYPOINT ["opsbot-entrypoint"]
CMD ["opsbot", "serve"]
