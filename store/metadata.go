package store

import (
	"context"
	"io"
	"maps"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// GetMetadata opens the whole object key and returns its user metadata,
// from the same GET, so bytes and metadata are of one version.
func (s *S3) GetMetadata(ctx context.Context, key string) (io.ReadCloser, map[string]string, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return nil, nil, s.wrapErr("get", key, err)
	}
	// The SDK lower-cases the keys as S3 does; a copy so callers may keep it.
	meta := maps.Clone(out.Metadata)
	body := s.countDownload(key, out.Body)
	if out.ContentLength != nil && *out.ContentLength >= 0 {
		body = &fullBody{rc: body, left: *out.ContentLength, key: key}
	}
	return body, meta, nil
}

// ReadAllMetadata is ReadAll with the object's user metadata, from the
// response the bytes came from (a body read again takes its metadata
// again).
func ReadAllMetadata(ctx context.Context, st Store, key string, limit int64) ([]byte, map[string]string, error) {
	var meta map[string]string
	data, _, err := readAll(ctx, key, limit, func() (io.ReadCloser, string, error) {
		body, m, err := st.GetMetadata(ctx, key)
		meta = m
		return body, "", err
	})
	if err != nil {
		return nil, nil, err
	}
	return data, meta, nil
}
