# syntax=docker/dockerfile:1
#
# autopilot's image: one statically linked binary, and nothing else.
#
#   docker build -t autopilot .
#
# Use it in your own image (any base, even scratch: the binary needs no libc):
#
#   COPY --from=autopilot /autopilot /usr/local/bin/autopilot
#   ENTRYPOINT ["autopilot", "-config", "/etc/containerpilot.json5"]
#
# or wrap one program, tini-style, with no configuration:
#
#   ENTRYPOINT ["autopilot", "--"]
#   CMD ["nginx", "-g", "daemon off;"]
#
# The demo images of docker-compose.yml are the `demo-backend` and
# `demo-nginx` targets below; the default target is the last stage.

# ---- build: the static binary, for the build host's architecture ---------
# .cargo/config.toml builds for the host's own target (`host-tuple`) with
# +crt-static, so this is the same static binary as `cargo build --release`
# on a developer's machine, on x86_64 and aarch64 alike.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin autopilot \
 && cp "target/$(uname -m)-unknown-linux-gnu/release/autopilot" /autopilot \
 && /autopilot -version

# ---- the Autopilot Pattern demo (docker-compose.yml) ---------------------
FROM debian:bookworm-slim AS demo-base
COPY --from=build /autopilot /usr/local/bin/autopilot
COPY examples/demo /opt/demo
ENTRYPOINT ["autopilot"]

FROM demo-base AS demo-backend
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/*

FROM demo-base AS demo-nginx
RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx \
 && rm -rf /var/lib/apt/lists/*

# ---- the image: only the binary (the default target) ----------------------
FROM scratch AS autopilot
COPY --from=build /autopilot /autopilot
ENTRYPOINT ["/autopilot"]
CMD ["-version"]
