# autopilot's image: one statically linked binary, and nothing else.
# (No `# syntax=` line: BuildKit would fetch that frontend from a registry;
# this file needs none, and Docker's classic builder reads it too.)
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
#
# A binary built beforehand (it must be static) can be copied in instead of
# built here, so that no Rust image is needed; tests/docker.rs builds the demo
# images this way, from a build context holding the binary and examples/demo:
#
#   docker build --target demo-backend \
#     --build-arg BUILD_IMAGE=debian:bookworm-slim \
#     --build-arg AUTOPILOT_BINARY=path/in/the/context/autopilot ...

# ---- build: the static binary, for the build host's architecture ---------
# .cargo/config.toml builds for the host's own target (`host-tuple`) with
# +crt-static, so this is the same static binary as `cargo build --release`
# on a developer's machine, on x86_64 and aarch64 alike. The base image is an
# argument because Docker's classic builder (the one docker-compose v1 uses)
# builds every stage before the target, used or not: only with another base
# does a prebuilt binary (AUTOPILOT_BINARY) need no Rust image.
ARG BUILD_IMAGE=rust:1-bookworm
FROM ${BUILD_IMAGE} AS build
WORKDIR /src
COPY . .
ARG AUTOPILOT_BINARY=
RUN if [ -n "$AUTOPILOT_BINARY" ]; then \
      cp "$AUTOPILOT_BINARY" /autopilot; \
    else \
      cargo build --release --locked --bin autopilot \
      && cp "target/$(uname -m)-unknown-linux-gnu/release/autopilot" /autopilot; \
    fi \
 && /autopilot -version

# ---- the Autopilot Pattern demo (docker-compose.yml) ---------------------
# The packages come first, so that a new autopilot binary or demo file
# reuses the cached apt-get layer.
FROM debian:bookworm-slim AS demo-backend
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /autopilot /usr/local/bin/autopilot
COPY examples/demo /opt/demo
ENTRYPOINT ["autopilot"]

FROM debian:bookworm-slim AS demo-nginx
RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /autopilot /usr/local/bin/autopilot
COPY examples/demo /opt/demo
ENTRYPOINT ["autopilot"]

# ---- the image: only the binary (the default target) ----------------------
FROM scratch AS autopilot
COPY --from=build /autopilot /autopilot
ENTRYPOINT ["/autopilot"]
CMD ["-version"]
