package store

import (
	"context"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Put stores body under key: one PutObject below the multipart threshold,
// else a multipart upload with parts in parallel. Request bodies are
// sections of body.R, which are seekable, so the SDK signs them instead of
// streaming them with aws-chunked encoding, and nothing is held in memory.
// A known digest signs the bytes without hashing them, and a file is sent
// with sendfile (see Body).
func (s *S3) Put(ctx context.Context, key string, body Body) error {
	size := body.Size
	if size < 0 {
		return fmt.Errorf("s3 put %s: negative size %d", key, size)
	}
	if size < s.opts.MultipartThreshold {
		_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket:        &s.bucket,
			Key:           &key,
			Body:          io.NewSectionReader(body.R, 0, size),
			ContentLength: aws.Int64(size),
			Metadata:      body.Metadata,
		}, putOptions(body, 0, size)...)
		if err != nil {
			return s.wrapErr("put", key, err)
		}
		s.uploaded(key, size)
		return nil
	}
	err := s.multipart(ctx, key, size, s.opts.PartSize, body.Metadata, func(ctx context.Context, upload *string, part int32, off, n int64) (*string, error) {
		out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
			Bucket:        &s.bucket,
			Key:           &key,
			UploadId:      upload,
			PartNumber:    aws.Int32(part),
			Body:          io.NewSectionReader(body.R, off, n),
			ContentLength: aws.Int64(n),
		}, putOptions(body, off, n)...)
		if err != nil {
			return nil, err
		}
		return out.ETag, nil
	})
	if err != nil {
		return s.wrapErr("put", key, err)
	}
	s.uploaded(key, size)
	return nil
}

// putOptions are the per-request options for sending bytes [off, off+n)
// of body: its payload hash, and its file for sendfile.
func putOptions(body Body, off, n int64) []func(*s3.Options) {
	return append(withPayloadHash(payloadHash(body.Digest, off, n, body.Size)), withSendfile(body.File, off, n)...)
}
