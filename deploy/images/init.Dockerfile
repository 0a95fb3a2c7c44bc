# sparkstage-init, the pods' init container. Build from the repository's root:
#   docker build -f deploy/images/init.Dockerfile -t ghcr.io/sparkstage/sparkstage-init:0.1.0 .
# The tag is the client's and the server's default --init-image
# (sparkstage_injection::pod::DEFAULT_INIT_IMAGE); tests/tests/deploy.rs checks they agree.
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p sparkstage-init --bin sparkstage-init \
 && install -D target/release/sparkstage-init /out/sparkstage-init

# Small and without a shell: the binary, glibc, CA certificates (for https, S3, GCS, Azure).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/sparkstage-init /usr/local/bin/sparkstage-init
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/sparkstage-init"]
