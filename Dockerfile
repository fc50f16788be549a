# The Sextant service image (docker-compose.yml builds it).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p sextant && cp target/release/sextant /usr/local/bin/sextant

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/sextant /usr/local/bin/sextant
COPY configs /etc/sextant
ENV SEXTANT_CONFIG=/etc/sextant/sextant.compose.toml SEXTANT_HOME=/var/lib/sextant
EXPOSE 8080
STOPSIGNAL SIGTERM
CMD ["sextant", "serve"]
