#!/usr/bin/env bash
# Installs what the tests need, idempotently: runc and busybox-static from
# Debian, and MinIO built with `go install` at the pinned version into
# .tools/bin. Run as root on Debian; apt is skipped when the packages are there.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/versions.sh

need_pkgs=()
command -v runc >/dev/null 2>&1 || need_pkgs+=(runc)
dpkg -s busybox-static >/dev/null 2>&1 || need_pkgs+=(busybox-static)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "installing from Debian: ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

mkdir -p .tools/bin
if [ ! -x .tools/bin/minio ] || [ "$(cat .tools/minio.version 2>/dev/null)" != "$MINIO_VERSION" ]; then
  echo "building minio $MINIO_VERSION (takes a few minutes the first time)"
  GOBIN="$PWD/.tools/bin" go install "github.com/minio/minio@$MINIO_VERSION"
  echo "$MINIO_VERSION" > .tools/minio.version
fi
