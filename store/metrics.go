package store

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/s3cache/s3cache/metrics"
)

// addRequestMetrics records every attempt of every request: placed after
// the SDK's retryer, so a throttled try that a retry then carries shows
// as throttled, not hidden in one ok.
func addRequestMetrics(st *middleware.Stack) error {
	return st.Finalize.Insert(middleware.FinalizeMiddlewareFunc("s3cacheRequestMetrics",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			start := time.Now()
			out, md, err := next.HandleFinalize(ctx, in)
			metrics.S3Request(awsmiddleware.GetOperationName(ctx), requestOutcome(ctx, err), time.Since(start))
			return out, md, err
		}), "Retry", middleware.After)
}

// requestOutcome classes an attempt's error by the HTTP status or S3 error
// code, never by its text, which names keys and buckets.
func requestOutcome(ctx context.Context, err error) metrics.Outcome {
	if err == nil {
		return metrics.OK
	}
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return metrics.Canceled
	}
	status := 0
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	code := ""
	var api smithy.APIError
	if errors.As(err, &api) {
		code = api.ErrorCode()
	}
	switch {
	case status == http.StatusNotFound || code == "NoSuchKey" || code == "NoSuchBucket" || code == "NotFound":
		return metrics.NotFound
	// 409 ConditionalRequestConflict is AWS's 412 for racing conditional writes.
	case status == http.StatusPreconditionFailed || code == "PreconditionFailed" || code == "ConditionalRequestConflict":
		return metrics.PreconditionFailed
	case status == http.StatusForbidden:
		return metrics.Denied
	case status == http.StatusTooManyRequests || code == "SlowDown" || code == "Throttling" || code == "RequestLimitExceeded":
		return metrics.Throttled
	}
	return metrics.Error
}

// objectKind tells blobs from manifests by the layout: a blob's key is its
// digest under the blobs prefix, which is what tells the two apart when
// both prefixes are the same.
func (l Layout) objectKind(key string) metrics.Object {
	if rest, ok := strings.CutPrefix(key, l.BlobsDir()); ok && isDigest(rest) {
		return metrics.Blob
	}
	if strings.HasPrefix(key, l.ManifestsDir()) {
		return metrics.Manifest
	}
	return metrics.Other
}

// isDigest reports whether s has a digest's shape, "<algorithm>:<hex>".
func isDigest(s string) bool {
	algo, hex, ok := strings.Cut(s, ":")
	if !ok || algo == "" || len(hex) < 32 {
		return false
	}
	for _, c := range algo {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	for _, c := range hex {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// uploaded records a stored object's bytes.
func (s *S3) uploaded(key string, size int64) {
	metrics.BytesUploaded(s.layout.objectKind(key), size)
}

// countDownload counts the bytes read from body as they are read, so a
// body abandoned half way counts only what came.
func (s *S3) countDownload(key string, body io.ReadCloser) io.ReadCloser {
	return &countingBody{ReadCloser: body, kind: s.layout.objectKind(key)}
}

type countingBody struct {
	io.ReadCloser
	kind metrics.Object
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	metrics.BytesDownloaded(b.kind, int64(n))
	return n, err
}
