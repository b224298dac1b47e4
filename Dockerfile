# stackgate: multi-stage build, slim non-root runtime.
# Build: docker build -t stackgate .   Run: see README, "Deploying for real".

# htmx comes from npm at build time (never committed).
FROM node:20-bookworm-slim AS assets
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends pkg-config && rm -rf /var/lib/apt/lists/*
COPY Cargo.toml Cargo.lock rust-toolchain.toml ./
COPY server ./server
COPY templates ./templates
COPY migrations ./migrations
RUN cargo build --release --locked --bin stackgate

FROM debian:bookworm-slim AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin stackgate
WORKDIR /app
COPY --from=build /src/target/release/stackgate /usr/local/bin/stackgate
COPY static ./static
COPY --from=assets /src/node_modules/htmx.org/dist/htmx.min.js ./static/vendor/htmx.min.js
COPY cloudformation ./cloudformation
RUN mkdir -p /app/data && chown stackgate /app/data
USER 10001
ENV STACKGATE_LISTEN=0.0.0.0:8080 \
    STACKGATE_DATABASE_URL=sqlite:///app/data/stackgate.db \
    STACKGATE_CATALOG_DIR=/app/cloudformation \
    STACKGATE_RULES_DIR=/app/cloudformation/rules \
    STACKGATE_STATIC_DIR=/app/static \
    STACKGATE_HTMX_PATH=/app/static/vendor/htmx.min.js
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/stackgate"]
CMD ["serve"]
