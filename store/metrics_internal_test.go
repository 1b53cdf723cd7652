package store

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/s3cache/s3cache/metrics"
)

func responseErr(status int) error {
	return &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}}, Err: errors.New("x")}
}

func TestRequestOutcome(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, c := range []struct {
		ctx  context.Context
		err  error
		want metrics.Outcome
	}{
		{context.Background(), nil, metrics.OK},
		{context.Background(), responseErr(404), metrics.NotFound},
		{context.Background(), &smithy.GenericAPIError{Code: "NoSuchKey"}, metrics.NotFound},
		{context.Background(), responseErr(412), metrics.PreconditionFailed},
		{context.Background(), fmt.Errorf("put: %w", &smithy.GenericAPIError{Code: "ConditionalRequestConflict"}), metrics.PreconditionFailed},
		{context.Background(), responseErr(403), metrics.Denied},
		{context.Background(), responseErr(503), metrics.Error},
		{context.Background(), &smithy.GenericAPIError{Code: "SlowDown"}, metrics.Throttled},
		{context.Background(), responseErr(429), metrics.Throttled},
		{context.Background(), responseErr(500), metrics.Error},
		{context.Background(), errors.New("connection reset"), metrics.Error},
		{canceled, errors.New("whatever"), metrics.Canceled},
		{context.Background(), fmt.Errorf("op: %w", context.DeadlineExceeded), metrics.Canceled},
	} {
		if got := requestOutcome(c.ctx, c.err); got != c.want {
			t.Errorf("requestOutcome(%v): %s, want %s", c.err, got, c.want)
		}
	}
}

func TestObjectKind(t *testing.T) {
	dgst := "sha256:" + strings.Repeat("0f", 32)
	for _, c := range []struct {
		layout Layout
		key    string
		want   metrics.Object
	}{
		{Layout{BlobsPrefix: "blobs/", ManifestsPrefix: "manifests/"}, "blobs/" + dgst, metrics.Blob},
		{Layout{BlobsPrefix: "blobs/", ManifestsPrefix: "manifests/"}, "manifests/main", metrics.Manifest},
		{Layout{Prefix: "team/", BlobsPrefix: "blobs/", ManifestsPrefix: "manifests/"}, "team/blobs/" + dgst, metrics.Blob},
		{Layout{BlobsPrefix: "blobs/", ManifestsPrefix: "manifests/"}, "blobs/notadigest", metrics.Other},
		{Layout{BlobsPrefix: "blobs/", ManifestsPrefix: "manifests/"}, "elsewhere", metrics.Other},
		// One prefix for both: the digest tells them apart.
		{Layout{BlobsPrefix: "c/", ManifestsPrefix: "c/"}, "c/" + dgst, metrics.Blob},
		{Layout{BlobsPrefix: "c/", ManifestsPrefix: "c/"}, "c/main", metrics.Manifest},
		{Layout{BlobsPrefix: "c/", ManifestsPrefix: "c/"}, "c/sha256:XYZ", metrics.Manifest},
	} {
		if got := c.layout.objectKind(c.key); got != c.want {
			t.Errorf("%+v kind of %s: %s, want %s", c.layout, c.key, got, c.want)
		}
	}
}
