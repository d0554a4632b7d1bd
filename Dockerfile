# The SmartCity services image used by compose.yaml (one image, one command per service).

# The duty console, built once (Vite) and served by the API at /.
FROM node:20.18.1-bookworm-slim AS console
WORKDIR /console/web
COPY alerts/console/web/package.json alerts/console/web/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY alerts/console/web ./
RUN npm run build

FROM python:3.11.11-slim-bookworm
WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY core ./core
COPY smartcity ./smartcity
COPY storage ./storage
COPY ingest ./ingest
COPY streams ./streams
COPY rules ./rules
COPY alerts ./alerts
COPY --from=console /console/static ./alerts/console/static
COPY devices ./devices
COPY simulators ./simulators
COPY harness ./harness
# /var/lib/smartcity exists in the image, owned by the service user: a named volume mounted there (compose's
# registry-data) takes its owner from it, so the API can write registry.db.
# openssl: compose's one-shot certs service runs deploy/tls/make-certs.sh in this image.
RUN apt-get update && apt-get install -y --no-install-recommends openssl && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir -c constraints.txt . && useradd --system --uid 10001 smartcity \
    && mkdir -p /var/lib/smartcity && chown smartcity /var/lib/smartcity
USER smartcity
ENTRYPOINT ["smartcity"]
