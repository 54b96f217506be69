#!/usr/bin/env bash
# Host tools the compose end-to-end test needs on this machine kind (Debian
# bookworm): the Docker engine, docker-compose v1 and debootstrap (for the
# local base image; no image registry is reachable here). Idempotent: a
# second run only checks. Prints nothing when everything is present.
set -euo pipefail
need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "compose_host: please install: ${need[*]} (apt)" >&2
  exit 1
fi
echo "compose_host: installing ${need[*]}" >&2
apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
