# syntax=docker/dockerfile:1.7
# cloudgate controller image: a release build of the `cloudgate` binary on distroless, non-root.
#
#   docker build -t cloudgate:dev .
#   docker run --rm cloudgate:dev --help
#
# The binary links glibc and libgcc (ring's C/assembly), so the runtime image is distroless
# "cc" (glibc, libgcc, CA certificates, tzdata; no shell, no package manager) in its :nonroot
# flavour (uid/gid 65532). The builder is Debian bookworm, the same glibc as debian12.

ARG RUST_VERSION=1.95.0

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
# .dockerignore admits only the workspace manifests and the crates (see there).
COPY . .
# Cache mounts keep the crate registry and target dir between builds; the binary is copied out
# of the cached target dir in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --package cloudgate --bin cloudgate \
    && install -D -m 0755 target/release/cloudgate /out/cloudgate

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="cloudgate" \
      org.opencontainers.image.description="Gateway API controller for AWS VPC Lattice, AWS ALB and Google Cloud load balancers" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/cloudgate-io/cloudgate"
COPY --from=build /out/cloudgate /usr/local/bin/cloudgate
# Numeric, so runAsNonRoot can verify it without reading /etc/passwd.
USER 65532:65532
# /metrics, /healthz, /readyz (--metrics-addr).
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/cloudgate"]
CMD ["controller"]
