# syntax=docker/dockerfile:1
# One image with the Rampart binaries: rampart-server (default command),
# rampart-agent, rampart-report and rampartctl.
#
#   docker build -t rampart .
#   docker run --rm rampart rampartctl --help

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# The cache mounts keep downloaded crates and compiled dependencies between
# builds; the binaries are copied out of the (cached) target directory.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --bins \
    && mkdir -p /out \
    && cp target/release/rampart-server target/release/rampart-agent target/release/rampart-report target/release/rampartctl /out/

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin rampart \
    && mkdir -p /run/rampart/broker /run/rampart/broker-admin /var/lib/rampart-agent \
    && chown rampart /run/rampart/broker /run/rampart/broker-admin /var/lib/rampart-agent \
    && chmod 0700 /run/rampart/broker /run/rampart/broker-admin /var/lib/rampart-agent
COPY --from=builder /out/ /usr/local/bin/
# Where docker-compose.yml's broker-users service writes each process's
# broker credentials and the sites' copy of the broker administrator's, and
# where a fleet keeps its identity file (a named volume takes the
# directory's owner).
USER rampart
# The API (operators, registration).
EXPOSE 7073
CMD ["rampart-server", "--config", "/etc/rampart/server.xml"]
