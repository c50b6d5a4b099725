# belegsync: one image for every role (producer, consumer, webhooks, migrate, simulators);
# docker-compose.yml picks the role by command.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Only what the wheel is built from (see [tool.hatch.build] in pyproject.toml).
COPY pyproject.toml README.md ./
COPY alembic ./alembic
COPY shared ./shared
COPY producers ./producers
COPY consumers ./consumers
COPY simulators ./simulators
COPY app ./app
# A virtualenv copied whole into the runtime stage: no compiler, no sources, no pip cache there.
RUN python -m venv /opt/belegsync && /opt/belegsync/bin/pip install .

FROM python:3.11-slim
ENV PATH=/opt/belegsync/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 belegsync \
    && useradd --system --uid 10001 --gid belegsync --home-dir /var/lib/belegsync \
       --create-home --shell /usr/sbin/nologin belegsync
COPY --from=build /opt/belegsync /opt/belegsync
# The working directory is writable by the service user: BELEGSYNC_SECRET_KEY_FILE and the
# SQLite default resolve relative to it when no environment variable overrides them.
WORKDIR /var/lib/belegsync
USER belegsync:belegsync
# 9108: /metrics, /healthz, /readyz; 8090: Billomat webhooks; 8081/8082: the simulators.
EXPOSE 9108 8090 8080 8081 8082
ENTRYPOINT ["belegsync"]
CMD ["--help"]
