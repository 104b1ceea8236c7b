# The service image: built with the pinned toolchain, run as an unprivileged user on a
# slim base. `docker compose up --build` uses it (see docker-compose.yml).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin bypass-idp

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 idp && mkdir /data && chown idp /data
COPY --from=build /src/target/release/bypass-idp /usr/local/bin/bypass-idp
USER idp
ENV BYPASS_IDP_LISTEN=0.0.0.0:8080 BYPASS_IDP_DATA_DIR=/data
EXPOSE 8080
# Ready means the database and Redis answer (GET /readyz); no curl needed.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["bypass-idp", "probe", "/readyz"]
# SIGTERM stops accepting and lets requests in flight finish (up to 10 s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["bypass-idp"]
CMD ["serve"]
