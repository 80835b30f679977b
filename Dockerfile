# renderfarm: one image for every role. The role is the first argument:
#   docker run IMAGE worker --broker amqp://...      (health: /healthz on --metrics-listen, :9180)
#   docker run IMAGE web --listen :8080 ...          (health: /healthz on --listen)
#   docker run IMAGE tune | render | replay ...      (CLI; no health endpoint)
# Settings come as flags or RENDERFARM_* variables (each command's --help),
# e.g. from an env file.
#
# Build: `make image` (buildah, tested on this repository's machines), or
#   docker build --build-arg VERSION=$(git describe --always) -t renderfarm .
#
# GO_IMAGE and BASE_IMAGE default to the official images. `make image` builds
# both locally (scripts/image.sh: debootstrap, and the host's Go copied into
# it) because no registry is reachable where it is tested; they have the
# same layout, so this file does not care which it gets.
ARG GO_IMAGE=golang:1.26.8-bookworm
ARG BASE_IMAGE=debian:bookworm-slim

# ---- build: Go from GO_IMAGE (go.mod's exact version; Debian 12's golang
# package is 1.19, far too old), libvips-dev from Debian 12 so the binary is
# linked against the same libvips 8.14 the runtime stage installs.
# ca-certificates: `go mod download` talks to the module proxy over TLS (the
# official golang image has them; a plain Debian base does not).
FROM ${GO_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates gcc libc6-dev pkg-config libvips-dev \
 && rm -rf /var/lib/apt/lists/*
# GOTOOLCHAIN=local: never download another toolchain mid-build; a Go older
# than go.mod asks for fails loudly instead.
ENV CGO_ENABLED=1 GOTOOLCHAIN=local GOFLAGS=-mod=readonly
WORKDIR /src
# Modules first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/root/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
# -trimpath and -s -w: no host paths or symbol tables in the image. The build
# cache mount keeps rebuilds after a small change short.
RUN --mount=type=cache,target=/root/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/renderfarm ./cmd/renderfarm \
 && /out/renderfarm --version

# ---- runtime: slim Debian 12 with only libvips' runtime library (libvips42
# and what it depends on, no recommends) and CA certificates for S3 and
# https:// sources. No compiler, no Go, no shell tools beyond the base.
FROM ${BASE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends libvips42 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# A fixed uid/gid, so volumes and host directories can be chowned to it
# before the container starts. /var/lib/renderfarm is the worker's default
# --state-dir and local journal.
RUN groupadd --gid 10001 renderfarm \
 && useradd --uid 10001 --gid renderfarm --home-dir /var/lib/renderfarm \
      --no-create-home --shell /usr/sbin/nologin renderfarm \
 && install -d -o renderfarm -g renderfarm -m 0750 /var/lib/renderfarm
COPY --from=build /out/renderfarm /usr/local/bin/renderfarm
COPY deploy/docker/healthcheck.sh /usr/local/bin/renderfarm-healthcheck
# glibc makes up to 8 malloc arenas per core; libvips' threads then keep
# freed image memory in arenas RSS never gives back. The engine also caps
# arenas itself; the variable covers the allocations made before it starts.
ENV MALLOC_ARENA_MAX=2
ARG VERSION=dev
LABEL org.opencontainers.image.title=renderfarm \
      org.opencontainers.image.version=${VERSION}
USER 10001:10001
WORKDIR /var/lib/renderfarm
# 8080: web (--listen). 9180: the worker's metrics and /healthz
# (--metrics-listen, added by the worker metrics change).
EXPOSE 8080 9180
# The health check is bash's /dev/tcp: no curl or wget in the image, and no
# extra binary. It reads the role and its listen address from PID 1's command
# line and environment (see deploy/docker/healthcheck.sh); CLI roles pass.
# start-period covers the worker's broker connect and the web tier's first
# declare.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/renderfarm-healthcheck"]
ENTRYPOINT ["/usr/local/bin/renderfarm"]
CMD ["--help"]
