# syntax=docker/dockerfile:1
# The contactd image: built on the Rust toolchain image, run on a slim Debian with nothing but
# the CA certificates (SMTP and webhook TLS), as a user without privileges.
#   docker build -t contactd .        # or `docker compose up --build`

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The registry and the target directory are cache mounts, so that a change of the sources
# rebuilds the workspace's crates only, not the dependencies. The binary is copied out of the
# cache, which is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p contactd \
    && cp target/release/contactd /usr/local/bin/contactd

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/contactd contactd \
    && mkdir -p /var/lib/contactd \
    && chown contactd /var/lib/contactd
COPY --from=build /usr/local/bin/contactd /usr/local/bin/contactd
USER contactd
ENV CONTACTD_DATA_DIR=/var/lib/contactd
# gRPC, and the HTTP port: the confirmation pages, /livez, /readyz and /metrics.
EXPOSE 50051 8080
# GET http://127.0.0.1:8080/readyz: 200 while the database answers and no shutdown has begun.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["contactd", "probe"]
ENTRYPOINT ["contactd"]
CMD ["serve"]
