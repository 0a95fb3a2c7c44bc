# sparkstage-server. Build from the repository's root:
#   docker build -f deploy/images/server.Dockerfile -t ghcr.io/sparkstage/sparkstage-server:0.1.0 .
# Multi-arch: docker buildx build --platform linux/amd64,linux/arm64 ... (each platform builds
# natively under emulation; or cross-compile with cargo-zigbuild in the build stage).
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p sparkstage-server --bin sparkstage-server \
 && install -D target/release/sparkstage-server /out/sparkstage-server

# glibc and CA certificates, no shell, no package manager; user 65532 (nonroot).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/sparkstage-server /usr/local/bin/sparkstage-server
USER 65532:65532
EXPOSE 10000 8443
ENTRYPOINT ["/usr/local/bin/sparkstage-server"]
