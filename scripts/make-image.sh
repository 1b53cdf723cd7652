#!/usr/bin/env bash
# Builds the s3cache BuildKit image offline, with `s3cache build` itself,
# and writes it as a tarball that `docker load` accepts.
#
#   IMAGE  image name (default s3cache:dev)
#   OUT    tarball (default bin/s3cache-image.tar)
#   S3CACHE_ROOT  state directory of the embedded engine that builds it
#   S3CACHE  the s3cache binary that builds it (default: make build's)
#
# No registry is reachable, so the image is FROM scratch: static builds of
# s3cache (entrypoint `buildkitd`) and of BuildKit's buildctl at the pinned
# version (buildx's drivers run `buildctl dial-stdio` and `buildctl debug
# workers` in the container), Debian's runc with the libraries it links,
# and the CA certificates for S3 over HTTPS. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/versions.sh
IMAGE=${IMAGE:-s3cache:dev}
OUT=${OUT:-bin/s3cache-image.tar}
ROOT_ARGS=()
[ -n "${S3CACHE_ROOT:-}" ] && ROOT_ARGS=(--root "$S3CACHE_ROOT")

command -v runc >/dev/null 2>&1 || scripts/install-test-deps.sh
[ -r /etc/ssl/certs/ca-certificates.crt ] || {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates >/dev/null
}

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
rootfs=$stage/rootfs
mkdir -p "$rootfs"/{usr/bin,etc/buildkit,etc/ssl/certs,var/lib/buildkit,run/buildkit,tmp}
chmod 1777 "$rootfs/tmp"

version=$(git describe --always --dirty 2>/dev/null || echo development)
echo "building s3cache $version (static)"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/s3cache/s3cache/internal/cli.Version=$version" \
  -o "$rootfs/usr/bin/s3cache" ./cmd/s3cache
ln -s s3cache "$rootfs/usr/bin/buildkitd"

# buildctl from the pinned BuildKit module, static, kept between runs.
buildctl=.tools/image/buildctl
if [ ! -x "$buildctl" ] || [ "$(cat "$buildctl.version" 2>/dev/null)" != "$BUILDKIT_VERSION" ]; then
  echo "building buildctl $BUILDKIT_VERSION (static)"
  dir=$(go mod download -json "github.com/moby/buildkit@$BUILDKIT_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  mkdir -p .tools/image
  (cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$OLDPWD/$buildctl" ./cmd/buildctl)
  echo "$BUILDKIT_VERSION" > "$buildctl.version"
fi
cp "$buildctl" "$rootfs/usr/bin/buildctl"

# Debian's runc and the shared libraries it links, at the same paths.
runc=$(command -v runc)
cp "$runc" "$rootfs/usr/bin/runc"
for lib in $(ldd "$runc" | grep -o '/[^ ]*'); do
  cp -L --parents "$lib" "$rootfs"
done
cp -L /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
printf 'root:x:0:0:root:/root:/bin/false\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\n' > "$rootfs/etc/group"

cat > "$stage/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
ENV PATH=/usr/bin
VOLUME /var/lib/buildkit
ENTRYPOINT ["buildkitd"]
DOCKERFILE

if [ -z "${S3CACHE:-}" ]; then
  make build >/dev/null
  S3CACHE=bin/s3cache
fi
mkdir -p "$(dirname "$OUT")"
"$S3CACHE" build "${ROOT_ARGS[@]}" --progress plain \
  --output "type=docker,name=$IMAGE,dest=$OUT" "$stage"
echo "wrote $OUT ($IMAGE, $(du -h "$OUT" | cut -f1))"
