# Builds the contactd binary; the image runs `contactd serve`.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p contactd

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 contactd \
    && mkdir -p /var/lib/contactd && chown contactd /var/lib/contactd
COPY --from=build /src/target/release/contactd /usr/local/bin/contactd
USER contactd
ENV CONTACTD_DATA_DIR=/var/lib/contactd
# gRPC, and the confirmation pages.
EXPOSE 50051 8080
ENTRYPOINT ["contactd"]
CMD ["serve"]
