package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// ErrPreconditionFailed is the condition of a conditional Put whose
// object changed since it was read (or appeared, for a Put that wanted
// none): read it again and retry. Check it with errors.Is.
var ErrPreconditionFailed = errors.New("precondition failed: the object changed")

// ErrConditionalNotSupported is the condition of a store that refuses
// conditional writes (If-Match / If-None-Match on PUT). The error's text
// holds the store's answer.
var ErrConditionalNotSupported = errors.New("the store does not support conditional writes")

// NoObject is the ETag PutIf takes to write only where no object is.
const NoObject = ""

// GetVersion opens the whole object key and returns its ETag, which a
// later PutIf can require to be unchanged.
func (s *S3) GetVersion(ctx context.Context, key string) (io.ReadCloser, string, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return nil, "", s.wrapErr("get", key, err)
	}
	return s.countDownload(key, out.Body), aws.ToString(out.ETag), nil
}

// PutIf stores body under key in one PUT only if the object's ETag is
// still etag (If-Match), or, with NoObject, only if there is no object
// (If-None-Match: *). A manifest is far below PUT's 5 GiB, so no
// multipart. It fails with ErrPreconditionFailed when the condition no
// longer holds, ErrConditionalNotSupported when the store refuses the
// condition itself.
func (s *S3) PutIf(ctx context.Context, key string, body Body, etag string) error {
	in := &s3.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           &key,
		Body:          io.NewSectionReader(body.R, 0, body.Size),
		ContentLength: aws.Int64(body.Size),
		Metadata:      body.Metadata,
	}
	if etag == NoObject {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = aws.String(etag)
	}
	if _, err := s.client.PutObject(ctx, in, putOptions(body, 0, body.Size)...); err != nil {
		err = conditionalErr(err)
		if etag != NoObject && !isNoSuchBucket(err) && isNotFound(err) {
			// S3 answers If-Match on a deleted object with 404: it changed.
			return fmt.Errorf("s3 conditional put %s: %w: the object is gone: %w", key, ErrPreconditionFailed, err)
		}
		return s.wrapErr("conditional put", key, err)
	}
	s.uploaded(key, body.Size)
	return nil
}

// conditionalErr marks a conditional PUT's failure with what it means.
func conditionalErr(err error) error {
	var re *smithyhttp.ResponseError
	status := 0
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	code, msg := "", ""
	var api smithy.APIError
	if errors.As(err, &api) {
		code, msg = api.ErrorCode(), api.ErrorMessage()
	}
	switch {
	// 409 ConditionalRequestConflict: AWS's answer to a concurrent
	// conditional write to the same key; as good as a 412 to retry on.
	case status == http.StatusPreconditionFailed || code == "PreconditionFailed" ||
		status == http.StatusConflict || code == "ConditionalRequestConflict":
		return fmt.Errorf("%w: %w", ErrPreconditionFailed, err)
	case status == http.StatusNotImplemented || code == "NotImplemented":
		return fmt.Errorf("%w: %w", ErrConditionalNotSupported, err)
	case status == http.StatusBadRequest && namesConditionHeader(code+" "+msg):
		return fmt.Errorf("%w: %w", ErrConditionalNotSupported, err)
	}
	return err
}

func namesConditionHeader(s string) bool {
	s = strings.ToLower(s)
	return strings.Contains(s, "if-match") || strings.Contains(s, "if-none-match") ||
		strings.Contains(s, "ifmatch") || strings.Contains(s, "ifnonematch")
}
