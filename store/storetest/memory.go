package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/s3cache/s3cache/store"
)

// Memory is a Store in memory, safe for concurrent use.
type Memory struct {
	mu     sync.Mutex
	objs   map[string]memObject
	writes int
}

type memObject struct {
	data []byte
	mod  time.Time
	etag string
	meta map[string]string
}

var _ store.Store = (*Memory)(nil)

// NewMemory returns an empty Memory store.
func NewMemory() *Memory { return &Memory{objs: map[string]memObject{}} }

func notFound(op, key string) error {
	return fmt.Errorf("memory %s %s: %w", op, key, store.ErrNotFound)
}

func (m *Memory) Stat(ctx context.Context, key string) (store.Object, error) {
	if err := ctx.Err(); err != nil {
		return store.Object{}, fmt.Errorf("memory stat %s: %w", key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objs[key]
	if !ok {
		return store.Object{}, notFound("stat", key)
	}
	return store.Object{Key: key, Size: int64(len(o.data)), LastModified: o.mod}, nil
}

func (m *Memory) List(ctx context.Context, prefix string, fn func(store.Object) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory list %s: %w", prefix, err)
	}
	m.mu.Lock()
	var objs []store.Object
	for k, o := range m.objs {
		if strings.HasPrefix(k, prefix) {
			objs = append(objs, store.Object{Key: k, Size: int64(len(o.data)), LastModified: o.mod})
		}
	}
	m.mu.Unlock()
	slices.SortFunc(objs, func(a, b store.Object) int { return strings.Compare(a.Key, b.Key) })
	for _, o := range objs {
		if err := fn(o); err != nil {
			return err
		}
	}
	return nil
}

// ListPage pages through List; the token is the last key of the page before.
func (m *Memory) ListPage(ctx context.Context, prefix, token string, limit int) ([]store.Object, string, error) {
	var page []store.Object
	more := false
	err := m.List(ctx, prefix, func(o store.Object) error {
		if o.Key <= token {
			return nil
		}
		if len(page) == max(limit, 1) {
			more = true
			return errPageFull
		}
		page = append(page, o)
		return nil
	})
	if err != nil && !errors.Is(err, errPageFull) {
		return nil, "", err
	}
	if !more {
		return page, "", nil
	}
	return page, page[len(page)-1].Key, nil
}

var errPageFull = errors.New("page full")

func (m *Memory) Put(ctx context.Context, key string, body store.Body) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory put %s: %w", key, err)
	}
	data, err := io.ReadAll(io.NewSectionReader(body.R, 0, body.Size))
	if err != nil {
		return fmt.Errorf("memory put %s: %w", key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objs[key] = m.newObject(data, body.Metadata)
	return nil
}

// newObject is data as written now. Its ETag changes with every write,
// even of the same bytes, as S3's may: callers must not rely on either.
func (m *Memory) newObject(data []byte, meta map[string]string) memObject {
	m.writes++
	o := memObject{data: data, mod: time.Now(), etag: fmt.Sprintf(`"%d-%d"`, m.writes, len(data))}
	if len(meta) > 0 {
		// Lower-case keys, as S3 returns them.
		o.meta = make(map[string]string, len(meta))
		for k, v := range meta {
			o.meta[strings.ToLower(k)] = v
		}
	}
	return o
}

func (m *Memory) GetMetadata(ctx context.Context, key string) (io.ReadCloser, map[string]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("memory get %s: %w", key, err)
	}
	m.mu.Lock()
	o, ok := m.objs[key]
	m.mu.Unlock()
	if !ok {
		return nil, nil, notFound("get", key)
	}
	return io.NopCloser(bytes.NewReader(o.data)), maps.Clone(o.meta), nil
}

// SetMetadata replaces the user metadata of the object key, as a writer
// that copies the object onto itself with new metadata could: for tests
// of what readers make of it.
func (m *Memory) SetMetadata(key string, meta map[string]string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objs[key]
	if !ok {
		return notFound("set metadata", key)
	}
	o.meta = maps.Clone(meta)
	m.objs[key] = o
	return nil
}

func (m *Memory) GetVersion(ctx context.Context, key string) (io.ReadCloser, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", fmt.Errorf("memory get %s: %w", key, err)
	}
	m.mu.Lock()
	o, ok := m.objs[key]
	m.mu.Unlock()
	if !ok {
		return nil, "", notFound("get", key)
	}
	return io.NopCloser(bytes.NewReader(o.data)), o.etag, nil
}

func (m *Memory) PutIf(ctx context.Context, key string, body store.Body, etag string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory conditional put %s: %w", key, err)
	}
	data, err := io.ReadAll(io.NewSectionReader(body.R, 0, body.Size))
	if err != nil {
		return fmt.Errorf("memory conditional put %s: %w", key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objs[key]
	if ok != (etag != store.NoObject) || (ok && o.etag != etag) {
		return fmt.Errorf("memory conditional put %s: %w", key, store.ErrPreconditionFailed)
	}
	m.objs[key] = m.newObject(data, body.Metadata)
	return nil
}

func (m *Memory) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memory get %s: %w", key, err)
	}
	m.mu.Lock()
	o, ok := m.objs[key]
	m.mu.Unlock()
	if !ok {
		return nil, notFound("get", key)
	}
	size := int64(len(o.data))
	if offset < 0 || offset > size {
		return nil, fmt.Errorf("memory get %s: offset %d outside the %d bytes", key, offset, size)
	}
	end := size
	if length >= 0 {
		end = min(offset+length, size)
	}
	return io.NopCloser(bytes.NewReader(o.data[offset:end])), nil
}

func (m *Memory) Touch(ctx context.Context, key string, size int64) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory touch %s: %w", key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objs[key]
	if !ok {
		return notFound("touch", key)
	}
	o.mod = time.Now()
	m.objs[key] = o
	return nil
}

func (m *Memory) Delete(ctx context.Context, keys []string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory delete: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		delete(m.objs, k)
	}
	return nil
}
