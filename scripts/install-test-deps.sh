#!/usr/bin/env bash
# Installs what the tests need, idempotently: runc, busybox-static and
# docker.io (its dockerd) from Debian, and MinIO built with `go install` at the pinned version into
# .tools/bin. Run as root on Debian; apt is skipped when the packages are there.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/versions.sh
grep -q "github.com/moby/buildkit $BUILDKIT_VERSION" go.mod || { echo "scripts/versions.sh BUILDKIT_VERSION=$BUILDKIT_VERSION differs from go.mod" >&2; exit 1; }

need_pkgs=()
command -v runc >/dev/null 2>&1 || need_pkgs+=(runc)
dpkg -s busybox-static >/dev/null 2>&1 || need_pkgs+=(busybox-static)
# Docker's engine for the image test (test/e2e/image_test.go starts its own).
if [ "${1:-}" != "--minio-only" ]; then
  command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
fi
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
# module_tool NAME MODULE VERSION PKGDIR: `go build` a command inside the
# module's own source (with its own go.mod), which `go install pkg@version`
# refuses for modules with exclude directives (BuildKit, buildx).
module_tool() {
  local name=$1 module=$2 version=$3 pkgdir=$4
  if [ ! -x ".tools/bin/$name" ] || [ "$(cat ".tools/$name.version" 2>/dev/null)" != "$version" ]; then
    echo "building $name $version from $module (takes a few minutes the first time)"
    local dir
    dir=$(go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [ -n "$dir" ] || { echo "go mod download $module@$version failed" >&2; exit 1; }
    (cd "$dir" && go build -o "$OLDPWD/.tools/bin/$name" "./$pkgdir")
    echo "$version" > ".tools/$name.version"
  fi
}
go_tool minio github.com/minio/minio "$MINIO_VERSION"
[ "${1:-}" = "--minio-only" ] && exit 0
module_tool buildkitd github.com/moby/buildkit "$BUILDKIT_VERSION" cmd/buildkitd
module_tool buildctl github.com/moby/buildkit "$BUILDKIT_VERSION" cmd/buildctl
module_tool buildx github.com/docker/buildx "$BUILDX_VERSION" cmd/buildx
