package store_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/s3cache/s3cache/internal/testutil/miniotest"
	"github.com/s3cache/s3cache/spec"
	"github.com/s3cache/s3cache/store"
)

func TestMain(m *testing.M) { os.Exit(miniotest.Main(m)) }

const mib = 1 << 20

// testConfig reaches bucket of the shared MinIO at endpoint (the server's own
// when empty, or a proxy in front of it).
func testConfig(srv *miniotest.Server, bucket, endpoint string) spec.Config {
	if endpoint == "" {
		endpoint = srv.Endpoint
	}
	return spec.Config{
		Region:          miniotest.Region,
		Bucket:          bucket,
		EndpointURL:     endpoint,
		UsePathStyle:    true,
		AccessKeyID:     miniotest.AccessKey,
		SecretAccessKey: miniotest.SecretKey,
		Prefix:          "",
		BlobsPrefix:     spec.DefaultBlobsPrefix,
		ManifestsPrefix: spec.DefaultManifestsPrefix,
	}
}

// smallOptions makes multipart uploads and batches kick in at test sizes.
func smallOptions() store.Options {
	return store.Options{MultipartThreshold: 5 * mib, PartSize: 5 * mib, DeleteBatch: 3}
}

func newStore(t *testing.T, cfg spec.Config, opts store.Options) *store.S3 {
	t.Helper()
	st, err := store.New(context.Background(), cfg, opts)
	if err != nil {
		t.Fatalf("new store: %v", err)
	}
	return st
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
