package store_test

import (
	"context"
	"testing"

	"github.com/s3cache/s3cache/spec"
	"github.com/s3cache/s3cache/store"
)

func TestLayout(t *testing.T) {
	const dgst = "sha256:0123abcd"
	for _, tc := range []struct {
		name                              string
		prefix, blobs, manifests          string
		blob, manifest, blobsDir, mfstDir string
	}{
		{"defaults", "", spec.DefaultBlobsPrefix, spec.DefaultManifestsPrefix,
			"blobs/sha256:0123abcd", "manifests/buildkit", "blobs/", "manifests/"},
		{"prefix", "ci/main/", spec.DefaultBlobsPrefix, spec.DefaultManifestsPrefix,
			"ci/main/blobs/sha256:0123abcd", "ci/main/manifests/buildkit", "ci/main/blobs/", "ci/main/manifests/"},
		{"custom", "p-", "b/", "m/",
			"p-b/sha256:0123abcd", "p-m/buildkit", "p-b/", "p-m/"},
		{"empty", "", "", "",
			"sha256:0123abcd", "buildkit", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := spec.Config{Region: "us-east-1", Bucket: "b", Prefix: tc.prefix, BlobsPrefix: tc.blobs, ManifestsPrefix: tc.manifests}
			st, err := store.New(context.Background(), cfg, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			l := st.Layout()
			for _, c := range []struct{ what, got, want string }{
				{"BlobKey", l.BlobKey(dgst), tc.blob},
				{"ManifestKey", l.ManifestKey("buildkit"), tc.manifest},
				{"BlobsDir", l.BlobsDir(), tc.blobsDir},
				{"ManifestsDir", l.ManifestsDir(), tc.mfstDir},
			} {
				if c.got != c.want {
					t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
				}
			}
		})
	}
}
