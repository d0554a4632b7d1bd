# The SmartCity services image used by compose.yaml (one image, one command per service).
FROM python:3.11.11-slim-bookworm
WORKDIR /app
COPY pyproject.toml README.md ./
COPY smartcity ./smartcity
COPY ingest ./ingest
COPY streams ./streams
COPY rules ./rules
COPY alerts ./alerts
COPY devices ./devices
COPY simulators ./simulators
RUN pip install --no-cache-dir . && useradd --system --uid 10001 smartcity
USER smartcity
ENTRYPOINT ["smartcity"]
