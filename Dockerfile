# Builds the contactd binary; the image runs `contactd serve`.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p contactd

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 contactd
COPY --from=build /src/target/release/contactd /usr/local/bin/contactd
USER contactd
EXPOSE 50051
ENTRYPOINT ["contactd"]
CMD ["serve"]
