# Production image: the gateway on PostgreSQL (set GATEWAY_DATABASE_URL) or the embedded SQLite default.
FROM python:3.11-slim
RUN useradd --system --home /srv/gateway gateway
WORKDIR /srv/gateway
COPY pyproject.toml README.md alembic.ini ./
COPY src ./src
COPY migrations ./migrations
COPY schemas ./schemas
RUN pip install --no-cache-dir '.[server]'
ENV GATEWAY_DATA_DIR=/srv/gateway/var GATEWAY_HOST=0.0.0.0 GATEWAY_PORT=8080 GATEWAY_ENVIRONMENT=production
RUN mkdir -p /srv/gateway/var && chown gateway /srv/gateway/var
USER gateway
EXPOSE 8080
HEALTHCHECK CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/readyz').status != 200)"
CMD ["gateway", "serve"]
