package store

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// wrapErr names the operation and key and marks a missing object with
// ErrNotFound, a missing bucket with ErrBucketNotFound (which is also
// ErrNotFound). SDK errors carry no credentials, so the cause is kept.
func (s *S3) wrapErr(op, key string, err error) error {
	switch {
	case isNoSuchBucket(err):
		return fmt.Errorf("s3 %s %s: bucket %q does not exist: %w", op, key, s.bucket, noSuchBucketError{err})
	case isNotFound(err):
		return fmt.Errorf("s3 %s %s: %w: %w", op, key, ErrNotFound, err)
	default:
		return fmt.Errorf("s3 %s %s: %w", op, key, err)
	}
}

// noSuchBucketError is an SDK error saying the bucket does not exist.
type noSuchBucketError struct{ err error }

func (e noSuchBucketError) Error() string { return e.err.Error() }
func (e noSuchBucketError) Unwrap() error { return e.err }

// Is makes a missing bucket both ErrBucketNotFound and ErrNotFound.
func (e noSuchBucketError) Is(target error) bool {
	return target == ErrBucketNotFound || target == ErrNotFound
}

func isNoSuchBucket(err error) bool {
	var nb *types.NoSuchBucket
	if errors.As(err, &nb) {
		return true
	}
	var api smithy.APIError
	return errors.As(err, &api) && api.ErrorCode() == "NoSuchBucket"
}

func isNotFound(err error) bool {
	var nf *types.NotFound
	var nk *types.NoSuchKey
	if errors.As(err, &nf) || errors.As(err, &nk) {
		return true
	}
	// Some operations (CopyObject, HEAD on other servers) model no 404 type.
	var api smithy.APIError
	if errors.As(err, &api) && api.ErrorCode() == "NoSuchKey" {
		return true
	}
	var re *smithyhttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound
}
