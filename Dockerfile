# wslab's image: the chat server, the load generator (agent) and the
# coordinator in one image, as docker-compose.yml uses it.
#
#   docker build -t wslab:latest .        # or: docker compose build
#
# Built in two stages so that the image carries three binaries and a
# minimal Debian, not a Rust toolchain. It needs the Docker Hub images below;
# with no registry at hand, docker/build-local-images.sh builds an equivalent
# image from binaries built on the host.

FROM rust:1-bookworm AS build
WORKDIR /src

# The dependencies are downloaded in a layer of their own that only a
# manifest or the lock file invalidates, so that editing the code does not
# download every crate again. Cargo parses every workspace member's manifest
# before it fetches, and a manifest without a target does not parse: each
# member gets an empty src/lib.rs here, removed before the real source
# arrives. A new workspace member needs its line below (the fetch fails
# loudly otherwise).
COPY Cargo.toml Cargo.lock ./
COPY protocol/Cargo.toml protocol/
COPY promhttp/Cargo.toml promhttp/
COPY tlsclient/Cargo.toml tlsclient/
COPY server/Cargo.toml server/
COPY loadgen/Cargo.toml loadgen/
COPY coordinator/Cargo.toml coordinator/
COPY labtest/Cargo.toml labtest/
COPY bench/Cargo.toml bench/
COPY testkit/Cargo.toml testkit/
RUN members="protocol promhttp tlsclient server loadgen coordinator labtest bench testkit" \
 && for m in $members; do mkdir -p "$m/src" && touch "$m/src/lib.rs"; done \
 && cargo fetch --locked \
 && for m in $members; do rm -r "$m/src"; done

COPY . .
# The release profile keeps line tables (debug = 1) for profiling on a
# host; the image does without them: 17 MB for the three instead of 135 MB.
RUN cargo build --release --locked --bin server --bin loadgen --bin coordinator \
 && mkdir -p /out \
 && for b in server loadgen coordinator; do \
      objcopy --strip-debug "target/release/$b" "/out/$b"; \
    done

FROM debian:bookworm-slim
# A fixed non-root uid, so that bind mounts and file ownership are
# predictable across hosts.
RUN groupadd --gid 10001 wslab \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /lab --shell /usr/sbin/nologin wslab
COPY --from=build /out/server /out/loadgen /out/coordinator /usr/local/bin/
COPY scenarios/ /lab/scenarios/
RUN mkdir -p /lab/results && chown 10001:10001 /lab/results
WORKDIR /lab
USER 10001:10001
# 8080 WebSocket and 9090 metrics (server), 7070 control and 9091 metrics
# (loadgen agent), 9095 metrics (coordinator run).
EXPOSE 8080 9090 7070 9091 9095
CMD ["server"]
