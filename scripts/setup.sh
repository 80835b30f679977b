#!/usr/bin/env bash
# setup.sh installs everything renderfarm's demo, tests and benchmarks need on a
# fresh Debian 12 machine, as root. Every step checks first, so running it again
# is cheap and changes nothing.
set -euo pipefail

PKGS=(
  pkg-config libvips-dev libvips-tools   # render engine (cgo) and vipsthumbnail for the bench
  rabbitmq-server                        # the broker
  python3-celery                         # the real Celery client for integration tests
  python3-redis                          # the Celery client's redis result backend, in tests
  redis-server                           # Celery's redis result backend, in tests
  libjemalloc2                           # allocator that keeps libvips' RSS flat
  chromium                               # headless browser for the web tier's status-page test
  cloud-init                             # `cloud-init schema` for deploy/cloud-init in deploy's tests
  shellcheck                             # the scripts inside deploy/cloud-init, in deploy's tests
  prometheus                             # promtool for deploy/prometheus, in deploy's tests
  systemd                                # `systemd-analyze verify` for deploy/systemd, in deploy's tests
  libjpeg-turbo-progs                    # djpeg: the JPEG decode floor in `make bench`
  python3-pil                            # Pillow, the peer in `make bench` and `make bench-e2e`
  python3-boto3                          # the Celery + Pillow peer worker's S3 client in `make bench-e2e`
  linux-perf                             # profiling the engine into libvips (docs/performance.md)
)
VERSITYGW_VERSION=v1.8.0

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Debian starts services on install; keep RabbitMQ and Redis from holding
  # their ports until a script asks for them.
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # cloud-init is here for its schema checker only. Installed on a machine
  # that did not run it, it must not take over the next boot.
  if [[ " ${missing[*]} " == *" cloud-init "* ]]; then
    touch /etc/cloud/cloud-init.disabled
  fi
fi

GOBIN="$(go env GOPATH)/bin"
# versitygw built by `go install` reports no version of its own; the module
# version recorded in the binary is the reliable one.
if ! go version -m "$GOBIN/versitygw" 2>/dev/null | grep -q "versitygw[[:space:]]*${VERSITYGW_VERSION}"; then
  echo "setup: installing versitygw $VERSITYGW_VERSION"
  go install "github.com/versity/versitygw/cmd/versitygw@${VERSITYGW_VERSION}"
fi
echo "setup: ok"
