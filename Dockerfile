# One image for every role of Target Alerts; the command picks the role:
#   alerts serve --host 0.0.0.0 --port 8000   API and web pages (any number of containers)
#   alerts scheduler                          polls, digests, outbox (one or more, PostgreSQL)
#   alerts db upgrade                         migrations (a one-shot container)
#   alerts run --host 0.0.0.0 --port 8000     all in one process, on SQLite (the default here)
# docker-compose.yml shows the production layout.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The service runs as an unprivileged user that owns nothing but its data folder.
RUN groupadd --system --gid 10001 alerts \
 && useradd --system --uid 10001 --gid alerts --home-dir /app --shell /usr/sbin/nologin alerts

# Install from the sources, then drop them: the image runs the installed package.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY alerts ./alerts
COPY scheduler ./scheduler
COPY db ./db
RUN pip install . \
 && rm -rf /src \
 && mkdir -p /app/var \
 && chown alerts:alerts /app/var

WORKDIR /app
USER alerts
# SQLite file, local mailbox and the development secret live here when used.
ENV ALERTS_VAR_DIR=/app/var
VOLUME ["/app/var"]

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]

CMD ["alerts", "run", "--host", "0.0.0.0", "--port", "8000"]
