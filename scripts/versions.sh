# Pinned versions of the tools the tests and the demo use; sourced by scripts.
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c # github.com/minio/minio, 2026-02-12
BUILDKIT_VERSION=v0.32.2                          # must match go.mod: upstream buildkitd/buildctl for interop
BUILDX_VERSION=v0.36.1                            # github.com/docker/buildx
