package store

import (
	"context"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Put stores size bytes of r under key: one PutObject below the multipart
// threshold, else a multipart upload with parts in parallel. Bodies are
// sections of r, which are seekable, so the SDK signs them instead of
// streaming them with aws-chunked encoding, and nothing is held in memory.
// Bytes of a known digest are signed without hashing them (WithContentDigest).
func (s *S3) Put(ctx context.Context, key string, r io.ReaderAt, size int64) error {
	if size < 0 {
		return fmt.Errorf("s3 put %s: negative size %d", key, size)
	}
	if size < s.opts.MultipartThreshold {
		_, err := s.client.PutObject(withFileSection(ctx, r, 0, size), &s3.PutObjectInput{
			Bucket:        &s.bucket,
			Key:           &key,
			Body:          io.NewSectionReader(r, 0, size),
			ContentLength: aws.Int64(size),
		}, withPayloadHash(payloadHash(ctx, 0, size, size))...)
		if err != nil {
			return s.wrapErr("put", key, err)
		}
		return nil
	}
	err := s.multipart(ctx, key, size, s.opts.PartSize, func(ctx context.Context, upload *string, part int32, off, n int64) (*string, error) {
		out, err := s.client.UploadPart(withFileSection(ctx, r, off, n), &s3.UploadPartInput{
			Bucket:        &s.bucket,
			Key:           &key,
			UploadId:      upload,
			PartNumber:    aws.Int32(part),
			Body:          io.NewSectionReader(r, off, n),
			ContentLength: aws.Int64(n),
		}, withPayloadHash(payloadHash(ctx, off, n, size))...)
		if err != nil {
			return nil, err
		}
		return out.ETag, nil
	})
	if err != nil {
		return s.wrapErr("put", key, err)
	}
	return nil
}
