package store

import (
	"context"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Stat returns the object's size and modification time.
func (s *S3) Stat(ctx context.Context, key string) (Object, error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return Object{}, s.wrapErr("stat", key, err)
	}
	return Object{Key: key, Size: aws.ToInt64(out.ContentLength), LastModified: aws.ToTime(out.LastModified)}, nil
}

// List calls fn for every object under prefix, in key order. An error of fn
// stops the listing and is returned as it is. A listing that cannot be
// complete is an error, never a short answer: prune takes what is not
// listed for absent. So a truncated page without a continuation token, or
// a token seen before (which would loop for ever), fails the listing; the
// SDK's paginator would stop silently on the first and loop on the second.
func (s *S3) List(ctx context.Context, prefix string, fn func(Object) error) error {
	seen := map[string]bool{}
	token := ""
	for page := 1; ; page++ {
		objs, next, err := s.ListPage(ctx, prefix, token, s.opts.ListPageSize)
		if err != nil {
			return fmt.Errorf("%w (page %d)", err, page)
		}
		for _, obj := range objs {
			if err := fn(obj); err != nil {
				return err
			}
		}
		if next == "" {
			return nil
		}
		if seen[next] {
			return fmt.Errorf("s3 list %s: page %d repeats the continuation token of an earlier page; the listing would never end", prefix, page)
		}
		seen[next] = true
		token = next
	}
}

// ListPage returns up to limit objects under prefix after token's page, in
// key order, and the next page's token (empty after the last page).
func (s *S3) ListPage(ctx context.Context, prefix, token string, limit int) ([]Object, string, error) {
	in := &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &prefix, MaxKeys: aws.Int32(int32(min(max(limit, 1), 1000)))}
	if token != "" {
		in.ContinuationToken = &token
	}
	out, err := s.client.ListObjectsV2(ctx, in)
	if err != nil {
		return nil, "", s.wrapErr("list", prefix, err)
	}
	objs := make([]Object, 0, len(out.Contents))
	for _, o := range out.Contents {
		objs = append(objs, Object{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size), LastModified: aws.ToTime(o.LastModified)})
	}
	next := ""
	if aws.ToBool(out.IsTruncated) {
		next = aws.ToString(out.NextContinuationToken)
		if next == "" {
			return nil, "", fmt.Errorf("s3 list %s: truncated page without a continuation token", prefix)
		}
	}
	return objs, next, nil
}

// Get reads length bytes from offset (length < 0: to the end). The body
// fails with io.ErrUnexpectedEOF if it ends before its Content-Length.
func (s *S3) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if offset < 0 {
		return nil, fmt.Errorf("s3 get %s: negative offset %d", key, offset)
	}
	if length == 0 {
		// No Range expresses zero bytes; still report a missing object.
		if _, err := s.Stat(ctx, key); err != nil {
			return nil, err
		}
		return io.NopCloser(eofReader{}), nil
	}
	in := &s3.GetObjectInput{Bucket: &s.bucket, Key: &key}
	switch {
	case length > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", offset, offset+length-1))
	case offset > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", offset))
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		return nil, s.wrapErr("get", key, err)
	}
	body := s.countDownload(key, out.Body)
	if out.ContentLength == nil || *out.ContentLength < 0 {
		return body, nil
	}
	return &fullBody{rc: body, left: *out.ContentLength, key: key}, nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// fullBody turns an early EOF into io.ErrUnexpectedEOF, so a connection cut
// short by a proxy or server is never taken for a complete object.
type fullBody struct {
	rc   io.ReadCloser
	left int64
	key  string
}

func (b *fullBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if err == io.EOF && b.left > 0 {
		err = fmt.Errorf("s3 get %s: body ended %d bytes early: %w", b.key, b.left, io.ErrUnexpectedEOF)
	}
	return n, err
}

func (b *fullBody) Close() error { return b.rc.Close() }
