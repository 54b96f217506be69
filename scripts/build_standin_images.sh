#!/usr/bin/env bash
# Build local stand-ins for the official images the compose file names, on a
# machine that reaches no image registry (this machine kind: see
# docs/operations.md §1). From Debian packages (debootstrap + apt) and PyPI
# only. Idempotent and cached: the debootstrapped base is made once per
# machine; the other images are rebuilt from Docker's layer cache (seconds)
# unless their recipe under docker/standin/ or requirements.txt changed.
#
#   scripts/build_standin_images.sh            # prints the image names
#
# Needs: a running dockerd, debootstrap (scripts/compose_host.sh), root.
# Also puts the host's CA bundle into docker/build-ca/ (git-ignored) so the
# project image's build stage reaches PyPI through this machine's TLS proxy.
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=${STANDIN_PREFIX:-budget-monitor-standin}
BASE=$PREFIX/debian:bookworm
CA=${STANDIN_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
AIRFLOW_VERSION=$(sed -n 's/^apache-airflow==//p' requirements.txt)

if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
  mirror=${mirror:-http://deb.debian.org/debian}
  rootfs=$(mktemp -d /tmp/bm-rootfs.XXXXXX)
  echo "standin: debootstrap bookworm from $mirror" >&2
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null
  tar -C "$rootfs" -c . | docker import - "$BASE" >/dev/null
  rm -rf "$rootfs"
fi

ctx=$(mktemp -d /tmp/bm-standin-ctx.XXXXXX)
trap 'rm -rf "$ctx"' EXIT
build() {  # name tag [extra files...]
  local name=$1 tag=$2; shift 2
  mkdir -p "$ctx/$name"
  cp -p docker/standin/"$name"/* "$ctx/$name/"
  [ $# -gt 0 ] && cp -p "$@" "$ctx/$name/"
  docker build -q --build-arg BASE="$BASE" -t "$PREFIX/$name:$tag" "$ctx/$name" >/dev/null
  echo "$PREFIX/$name:$tag"
}
cp "$CA" "$ctx/ca-certificates.crt"
build airflow "$AIRFLOW_VERSION-python3.11" requirements.txt "$ctx/ca-certificates.crt"
build postgres 15
build redis 7
build mailpit standin
install -m 0644 "$CA" docker/build-ca/ca-certificates.crt
