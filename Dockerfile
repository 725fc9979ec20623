# keeper's container image: the release binary on Debian 12 (bookworm) slim, run as a non-root
# user. Build: docker build -t ltd-keeper:0.1.0 .   (see deploy/kubernetes/README.md)
#
# The build stage compiles with the toolchain the project is tested with; the runtime stage
# installs only what the binary links (libpq5, for PostgreSQL; SQLite is compiled in) and the
# CA certificates its HTTPS clients (S3, Fastly) verify servers with. tests/container.rs
# checks that these packages provide every library the binary needs.

FROM rust:1.95-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin keeper \
    && strip target/release/keeper

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq5 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 keeper \
    && useradd --system --uid 10001 --gid keeper --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin keeper
COPY --from=build /src/target/release/keeper /usr/local/bin/keeper
# The manifests run it with a read-only root file system; nothing is written but /tmp.
USER 10001:10001
EXPOSE 8080 9100
ENTRYPOINT ["/usr/local/bin/keeper"]
CMD ["serve"]
