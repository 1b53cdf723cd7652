package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"
)

// abortTimeout bounds the abort of a failed upload, which runs even when the
// caller's context is done.
const abortTimeout = 30 * time.Second

// partFunc sends part number part, bytes [off, off+n) of the object, and
// returns its ETag.
type partFunc func(ctx context.Context, upload *string, part int32, off, n int64) (*string, error)

// multipart writes key as a multipart upload of size bytes in parts of about
// partSize, PartConcurrency at a time, and aborts the upload on any error.
func (s *S3) multipart(ctx context.Context, key string, size, partSize int64, metadata map[string]string, send partFunc) (err error) {
	// Grow the parts if the object would need more than S3 allows.
	partSize = max(partSize, (size+maxParts-1)/maxParts)
	count := max((size+partSize-1)/partSize, 1)
	// Share the bytes evenly between the parts, so that a last part of a few
	// bytes does not leave one stream carrying the rest (33 MiB: 2 x 16.5,
	// not 32 + 1); every part but the last must stay at S3's minimum.
	if even := (size + count - 1) / count; even >= minPartSize {
		partSize = even
	}

	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &s.bucket, Key: &key, Metadata: metadata})
	if err != nil {
		return err
	}
	upload := created.UploadId
	defer func() {
		if err == nil {
			return
		}
		// The caller's context may be what failed: abort on a fresh one so the
		// parts do not linger (and cost) until a lifecycle rule removes them.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
		defer cancel()
		_, aerr := s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: &s.bucket, Key: &key, UploadId: upload})
		if aerr != nil {
			err = errors.Join(err, fmt.Errorf("abort upload: %w", aerr))
		}
	}()

	parts := make([]types.CompletedPart, count)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.opts.PartConcurrency)
	for i := range count {
		if gctx.Err() != nil {
			break // a part failed: send no more
		}
		off := i * partSize
		n := min(partSize, size-off)
		num := int32(i + 1)
		g.Go(func() error {
			etag, err := send(gctx, upload, num, off, n)
			if err != nil {
				return fmt.Errorf("part %d: %w", num, err)
			}
			parts[i] = types.CompletedPart{ETag: etag, PartNumber: aws.Int32(num)}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          &s.bucket,
		Key:             &key,
		UploadId:        upload,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	return err
}
