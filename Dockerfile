# Clusterweb's image: used by docker-compose.yml and by the Kubernetes manifests.
# Build: docker build -t clusterweb .   Runs gunicorn as a non-root user.

FROM python:3.11.11-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential libldap2-dev libsasl2-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml constraints.txt ./
# Runtime dependencies only, pinned by constraints.txt (python-ldap compiles here).
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --upgrade "pip>=24" \
 && /opt/venv/bin/pip install --no-cache-dir -c constraints.txt .

FROM python:3.11.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends libldap-2.5-0 libsasl2-2 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 clusterweb \
 && useradd --system --uid 10001 --gid clusterweb --home-dir /app --shell /usr/sbin/nologin clusterweb
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY manage.py ./
COPY clusterweb ./clusterweb
COPY provisioning ./provisioning
COPY billing ./billing
COPY templates ./templates
COPY static ./static
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=clusterweb.settings \
    CLUSTERWEB_VAR_DIR=/var/lib/clusterweb
# Static files are collected at build time (whitenoise serves them); the throwaway key exists
# only for this step.
RUN mkdir -p /var/lib/clusterweb \
 && SECRET_KEY=build-only CLUSTERWEB_VAR_DIR=/tmp/build python manage.py collectstatic --noinput -v 0 \
 && rm -rf /tmp/build \
 && chown clusterweb:clusterweb /var/lib/clusterweb
USER 10001:10001
EXPOSE 8000 8001
CMD ["gunicorn", "-c", "python:clusterweb.gunicorn_conf", "clusterweb.wsgi"]
