package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
)

// readAllAttempts is how often ReadAll reads an object whose body breaks
// off (a connection reset, a body cut short) before it gives up.
const readAllAttempts = 3

// ReadAll reads the whole object key, failing if it is larger than limit
// bytes; it reads at most limit+1 bytes, so an oversized object costs no more.
// A body that breaks off is read again from the start, not resumed, so an
// object rewritten meanwhile is never spliced from two versions. (Failed
// requests are the SDK retryer's business, not retried here.)
func ReadAll(ctx context.Context, st Store, key string, limit int64) ([]byte, error) {
	data, _, err := readAll(ctx, key, limit, func() (io.ReadCloser, string, error) {
		body, err := st.Get(ctx, key, 0, -1)
		return body, "", err
	})
	return data, err
}

// ReadAllVersion is ReadAll with the object's ETag, for a later PutIf:
// the ETag of the response the bytes came from, also when the object is
// too large (ErrTooLarge).
func ReadAllVersion(ctx context.Context, st Store, key string, limit int64) ([]byte, string, error) {
	return readAll(ctx, key, limit, func() (io.ReadCloser, string, error) {
		return st.GetVersion(ctx, key)
	})
}

func readAll(ctx context.Context, key string, limit int64, open func() (io.ReadCloser, string, error)) ([]byte, string, error) {
	if limit < 0 || limit == math.MaxInt64 {
		return nil, "", fmt.Errorf("read %s: invalid limit %d", key, limit)
	}
	for attempt := 1; ; attempt++ {
		body, etag, err := open()
		if err != nil {
			return nil, "", err
		}
		data, err := io.ReadAll(io.LimitReader(body, limit+1))
		_ = body.Close()
		if err != nil {
			if attempt < readAllAttempts && ctx.Err() == nil {
				continue
			}
			return nil, "", fmt.Errorf("read %s (%d attempts): %w", key, attempt, err)
		}
		if int64(len(data)) > limit {
			return nil, etag, fmt.Errorf("read %s: object is larger than the limit of %d bytes: %w", key, limit, ErrTooLarge)
		}
		return data, etag, nil
	}
}

// ErrTooLarge is the condition of an object read whole that is larger
// than the caller's limit.
var ErrTooLarge = errors.New("object too large")
