package store

import (
	"context"
	"fmt"
	"io"
	"math"
)

// ReadAll reads the whole object key, failing if it is larger than limit
// bytes; it reads at most limit+1 bytes, so an oversized object costs no more.
func ReadAll(ctx context.Context, st Store, key string, limit int64) ([]byte, error) {
	if limit < 0 || limit == math.MaxInt64 {
		return nil, fmt.Errorf("read %s: invalid limit %d", key, limit)
	}
	body, err := st.Get(ctx, key, 0, -1)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	data, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("read %s: object is larger than the limit of %d bytes", key, limit)
	}
	return data, nil
}
