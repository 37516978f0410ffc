# Sluice: the one `sluice` binary (gateway, compactor, dev) in a small non-root image.
#   docker build -t sluice .
#   docker run --rm -p 8080:8080 sluice gateway --store s3://bucket
# The Terraform module (terraform/) and the Compose stacks (localstack/compose.*.yml) run it.
# CI has no Docker engine, so the image is not built there; scripts/check-terraform.sh lints
# this file with hadolint.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p sluice-cli \
    && cp target/release/sluice /sluice

# distroless/cc: glibc + libgcc, no shell, runs as uid 65532 ("nonroot", numeric so that
# runtimes checking for a non-root user need not resolve the name).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /sluice /usr/local/bin/sluice
USER 65532:65532
ENV SLUICE_LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/sluice"]
CMD ["--help"]
