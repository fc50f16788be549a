# The Sextant service image (docker-compose.yml builds it).
#
# Base images are pinned to exact tags. To bump them: the Rust tag follows `rust-version` in
# Cargo.toml; keep the build and runtime images on the same Debian release (here trixie, 13), so
# the binary finds the glibc it was linked against; take the newest point release of
# debian:13.x-slim; then `docker compose build --pull sextant`.
FROM rust:1.95.0-trixie AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p sextant && cp target/release/sextant /usr/local/bin/sextant

FROM debian:13.6-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
# An unprivileged user with a fixed uid/gid, so a volume's ownership means the same in every build
# (a volume that an older, root-run image wrote to needs `chown -R 10001:10001` once; see README,
# "The stack"). It owns only its data directory; the binary and the configuration stay root's.
RUN groupadd --system --gid 10001 sextant \
    && useradd --system --uid 10001 --gid sextant --home-dir /var/lib/sextant --no-create-home \
        --shell /usr/sbin/nologin sextant \
    && install -d -o sextant -g sextant -m 0750 /var/lib/sextant
COPY --from=build /usr/local/bin/sextant /usr/local/bin/sextant
COPY configs /etc/sextant
ENV SEXTANT_CONFIG=/etc/sextant/sextant.compose.toml SEXTANT_HOME=/var/lib/sextant
USER sextant:sextant
EXPOSE 8080
STOPSIGNAL SIGTERM
CMD ["sextant", "serve"]
