# Sluice: the one `sluice` binary (gateway, compactor, dev) in a small non-root image.
#   docker build -t sluice .
#   docker run --rm -p 8080:8080 sluice gateway --store s3://bucket --listen 0.0.0.0:8080
# Not built or linted in CI (no Docker engine there); issue 15 tracks hadolint and the deploy files.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p sluice-cli \
    && cp target/release/sluice /sluice

# distroless/cc: glibc + libgcc, no shell, runs as uid 65532 ("nonroot").
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /sluice /usr/local/bin/sluice
USER nonroot:nonroot
ENV SLUICE_LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/sluice"]
CMD ["--help"]
