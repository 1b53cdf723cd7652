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
# go_tool NAME PACKAGE VERSION: go install PACKAGE@VERSION into .tools/bin once.
go_tool() {
  local name=$1 pkg=$2 version=$3
  if [ ! -x ".tools/bin/$name" ] || [ "$(cat ".tools/$name.version" 2>/dev/null)" != "$version" ]; then
    echo "building $name $version (takes a few minutes the first time)"
    GOBIN="$PWD/.tools/bin" go install "$pkg@$version"
    echo "$version" > ".tools/$name.version"
  fi
}
go_tool minio github.com/minio/minio "$MINIO_VERSION"
[ "${1:-}" = "--minio-only" ] && exit 0
go_tool buildkitd github.com/moby/buildkit/cmd/buildkitd "$BUILDKIT_VERSION"
go_tool buildctl github.com/moby/buildkit/cmd/buildctl "$BUILDKIT_VERSION"
go_tool buildx github.com/docker/buildx/cmd/buildx "$BUILDX_VERSION"
