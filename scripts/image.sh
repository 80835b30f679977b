#!/usr/bin/env bash
# image.sh is `make image`: builds the top-level Dockerfile with buildah and
# tests the result on this machine, as root.
#
#   scripts/image.sh          install tools, base images (cached), build, test
#   scripts/image.sh base     only the cached base images
#   scripts/image.sh build    base images and the renderfarm image, no test
#
# No container registry is reachable here, so the two images the Dockerfile
# starts FROM are made locally and passed in as build arguments:
#   - BASE_IMAGE: Debian 12 from `debootstrap --variant=minbase`, trimmed the
#     way debian:bookworm-slim is (no docs, man pages or locales), with the
#     same apt sources (bookworm, -updates, -security). The rootfs tarball is
#     cached in $CACHE, the image in buildah's store.
#   - GO_IMAGE: that base plus this host's /usr/local/go, i.e. what the
#     official golang:<version>-bookworm image is (Go in /usr/local/go on
#     Debian 12). Debian's golang package is far older than go.mod's Go.
# Elsewhere (Docker, a CI with Docker Hub) the Dockerfile's defaults pull the
# official images instead; nothing in it is specific to this machine.
#
# The test runs the built image's binary with `buildah run --isolation
# chroot` (podman/crun cannot start containers on these machines): --version,
# tune, and the web tier plus a worker from the image taking one render
# through a real RabbitMQ on the host (host network is shared), with the
# image's health check probing the web tier.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${CACHE:=/var/cache/renderfarm-image}"
: "${MIRROR:=http://deb.debian.org/debian}"
: "${IMAGE:=localhost/renderfarm:latest}"
: "${VERSION:=$(git describe --always --dirty 2>/dev/null || echo dev)}"
BASE_IMAGE=localhost/renderfarm/debian:bookworm-slim
GO_VERSION=$(sed -n 's/^go \([0-9.]*\)$/\1/p' go.mod)
GO_IMAGE=localhost/renderfarm/golang:${GO_VERSION}-bookworm
# chroot isolation is the one that works here; RUN steps share the host
# network (apt and the Go module proxy).
export BUILDAH_ISOLATION=chroot

log() { echo "image: $*" >&2; }

install_tools() {
  local pkgs=(buildah debootstrap) missing=() p
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

have_image() { buildah inspect --type image "$1" >/dev/null 2>&1; }

# base_image: Debian 12 minbase from debootstrap, imported into buildah's
# store. The tarball is kept, so a wiped image store costs an import, not a
# download.
base_image() {
  have_image "$BASE_IMAGE" && return 0
  local tar=$CACHE/bookworm-minbase.tar
  if [[ ! -s $tar ]]; then
    local root=$CACHE/rootfs
    rm -rf "$root" && mkdir -p "$root"
    log "debootstrap bookworm from $MIRROR (a few minutes, once)"
    debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
      { tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
    slim_rootfs "$root"
    tar -C "$root" --numeric-owner -cf "$tar.tmp" .
    mv "$tar.tmp" "$tar"
    rm -rf "$root"
  fi
  log "importing $tar as $BASE_IMAGE"
  local ctr mnt
  buildah rm renderfarm-base-import >/dev/null 2>&1 || true # left by an interrupted run
  ctr=$(buildah from --name renderfarm-base-import scratch)
  mnt=$(buildah mount "$ctr")
  tar -C "$mnt" --numeric-owner -xf "$tar"
  buildah umount "$ctr" >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd /bin/bash --label org.opencontainers.image.description="Debian 12 minbase (debootstrap)" "$ctr"
  buildah commit --quiet --rm "$ctr" "$BASE_IMAGE" >/dev/null
}

# slim_rootfs trims a debootstrap tree as debian:bookworm-slim is trimmed,
# and gives it the same apt sources, so images built on it get security
# updates.
slim_rootfs() {
  local root=$1
  rm -f "$root/etc/apt/sources.list"
  cat >"$root/etc/apt/sources.list.d/debian.sources" <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  # What the slim image's /etc/dpkg/dpkg.cfg.d/docker does: packages
  # installed later leave these out too.
  cat >"$root/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
  cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  rm -rf "$root"/usr/share/{man,info,locale,lintian}/* "$root"/var/lib/apt/lists/* \
    "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb "$root"/var/log/*.log
}

# go_image is the official golang image's layout: the base plus Go in
# /usr/local/go. It must be go.mod's Go exactly (GOTOOLCHAIN=local in the
# Dockerfile: no toolchain download during the build).
#
# It also carries the host's local CA certificates
# (/usr/local/share/ca-certificates): where egress goes through a
# TLS-intercepting proxy, as on the machines this is tested on, the build
# stage's `go mod download` must trust the same CA the host does. The
# Dockerfile's `apt-get install ca-certificates` adds them to the build
# stage's trust store. The runtime stage starts from BASE_IMAGE, so the
# shipped image trusts only Debian's CAs.
go_image() {
  local stamp
  stamp=$({ /usr/local/go/bin/go env GOVERSION; cat /usr/local/share/ca-certificates/*.crt 2>/dev/null; } | sha256sum | cut -c1-16)
  if have_image "$GO_IMAGE"; then
    [[ $(buildah inspect --type image --format '{{index .ImageAnnotations "renderfarm.stamp"}}{{index .Docker.Config.Labels "renderfarm.stamp"}}' "$GO_IMAGE") == "$stamp" ]] && return 0
    buildah rmi "$GO_IMAGE" >/dev/null
  fi
  local have
  have=$(/usr/local/go/bin/go env GOVERSION)
  if [[ $have != "go$GO_VERSION" ]]; then
    log "/usr/local/go is $have, go.mod wants go$GO_VERSION"
    exit 1
  fi
  log "making $GO_IMAGE from $BASE_IMAGE and /usr/local/go"
  local ctr
  buildah rm renderfarm-go-import >/dev/null 2>&1 || true # left by an interrupted run
  ctr=$(buildah from --name renderfarm-go-import "$BASE_IMAGE")
  buildah copy --quiet "$ctr" /usr/local/go /usr/local/go >/dev/null
  if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    buildah copy --quiet "$ctr" /usr/local/share/ca-certificates /usr/local/share/ca-certificates >/dev/null
  fi
  buildah config --env PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env GOLANG_VERSION="$GO_VERSION" --label renderfarm.stamp="$stamp" "$ctr"
  buildah commit --quiet --rm "$ctr" "$GO_IMAGE" >/dev/null
}

build_image() {
  log "building $IMAGE (VERSION=$VERSION)"
  # --format docker: the OCI image config has no HEALTHCHECK; buildah drops
  # it from OCI images. --layers caches unchanged steps (apt, go mod
  # download) between runs; RUN --mount=type=cache keeps Go's build cache.
  buildah bud --quiet --format docker --layers --pull=never \
    --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg GO_IMAGE="$GO_IMAGE" \
    --build-arg VERSION="$VERSION" -t "$IMAGE" -f Dockerfile . >/dev/null
  log "built $IMAGE: $(buildah images --format '{{.Size}}' "$IMAGE") (base $(buildah images --format '{{.Size}}' "$BASE_IMAGE"))"
}

main() {
  mkdir -p "$CACHE"
  # One `make image` at a time on a machine: two would race to create the
  # same base images and working containers.
  exec 9>"$CACHE/lock"
  flock 9
  install_tools
  base_image
  go_image
  case "${1:-all}" in
  base) return 0 ;;
  build) build_image ;;
  all)
    build_image
    bash scripts/image-test.sh "$IMAGE" "$VERSION"
    ;;
  *)
    echo "usage: $0 [all|base|build]" >&2
    exit 2
    ;;
  esac
}

main "$@"
