package storetest

import (
	"context"
	"io"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/s3cache/s3cache/store"
)

// Op names a Store operation, for Spy's counters and hooks.
type Op string

// The operations of store.Store.
const (
	OpStat       Op = "stat"
	OpList       Op = "list"
	OpListPage   Op = "list page"
	OpPut        Op = "put"
	OpGet        Op = "get"
	OpTouch      Op = "touch"
	OpDelete     Op = "delete"
	OpGetVersion Op = "get version"
	OpPutIf      Op = "conditional put"
	OpGetMeta    Op = "get with metadata"
)

var ops = []Op{OpStat, OpList, OpListPage, OpPut, OpGet, OpTouch, OpDelete, OpGetVersion, OpPutIf, OpGetMeta}

// Spy is a Store that forwards every operation to Store, counting each and
// running the hooks around it: for tests that count requests, inject faults
// or pause one client to interleave it with another. It forwards each
// method explicitly, rather than embedding the Store, so that a method
// added to store.Store cannot slip past the counters and hooks (as
// ListPage once did past hand-made wrappers, which sent tests down a
// fallback that production never takes).
type Spy struct {
	Store store.Store
	// Before, when set, runs ahead of every operation with the operation's
	// key: the prefix of a listing, the first key of a delete. An error
	// fails the operation without forwarding it. It may block.
	Before func(ctx context.Context, op Op, key string) error
	// Listed, when set, runs for each object a List or ListPage returns, in
	// order; an error ends the listing with it.
	Listed func(op Op, prefix string, o store.Object) error
	// After, when set, runs once a forwarded operation returns, and its
	// result replaces the operation's error.
	After func(op Op, key string, err error) error

	counts  [10]atomic.Int64 // by index in ops
	deleted atomic.Int64
	objects atomic.Int64
	mu      sync.Mutex
	limits  []int
}

var _ store.Store = (*Spy)(nil)

// NewSpy returns a Spy on st with no hooks.
func NewSpy(st store.Store) *Spy { return &Spy{Store: st} }

// Count is how many times op was called.
func (s *Spy) Count(op Op) int {
	for i, o := range ops {
		if o == op {
			return int(s.counts[i].Load())
		}
	}
	panic("storetest: unknown op " + string(op))
}

// Lists is how many listings were asked for, whole (List) or a page at a
// time (ListPage).
func (s *Spy) Lists() int { return s.Count(OpList) + s.Count(OpListPage) }

// Deleted is how many keys were passed to Delete.
func (s *Spy) Deleted() int { return int(s.deleted.Load()) }

// ObjectsListed is how many objects listings returned.
func (s *Spy) ObjectsListed() int { return int(s.objects.Load()) }

// PageLimits is the limit of each ListPage call, in order.
func (s *Spy) PageLimits() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.limits)
}

// Reset zeroes the counters.
func (s *Spy) Reset() {
	for i := range s.counts {
		s.counts[i].Store(0)
	}
	s.deleted.Store(0)
	s.objects.Store(0)
	s.mu.Lock()
	s.limits = nil
	s.mu.Unlock()
}

// before counts op and runs the Before hook.
func (s *Spy) before(ctx context.Context, op Op, key string) error {
	for i, o := range ops {
		if o == op {
			s.counts[i].Add(1)
		}
	}
	if s.Before == nil {
		return nil
	}
	return s.Before(ctx, op, key)
}

// after runs the After hook.
func (s *Spy) after(op Op, key string, err error) error {
	if s.After == nil {
		return err
	}
	return s.After(op, key, err)
}

// listed counts o and runs the Listed hook.
func (s *Spy) listed(op Op, prefix string, o store.Object) error {
	s.objects.Add(1)
	if s.Listed == nil {
		return nil
	}
	return s.Listed(op, prefix, o)
}

func (s *Spy) Stat(ctx context.Context, key string) (store.Object, error) {
	if err := s.before(ctx, OpStat, key); err != nil {
		return store.Object{}, err
	}
	obj, err := s.Store.Stat(ctx, key)
	return obj, s.after(OpStat, key, err)
}

func (s *Spy) List(ctx context.Context, prefix string, fn func(store.Object) error) error {
	if err := s.before(ctx, OpList, prefix); err != nil {
		return err
	}
	err := s.Store.List(ctx, prefix, func(o store.Object) error {
		if err := s.listed(OpList, prefix, o); err != nil {
			return err
		}
		return fn(o)
	})
	return s.after(OpList, prefix, err)
}

func (s *Spy) ListPage(ctx context.Context, prefix, token string, limit int) ([]store.Object, string, error) {
	s.mu.Lock()
	s.limits = append(s.limits, limit)
	s.mu.Unlock()
	if err := s.before(ctx, OpListPage, prefix); err != nil {
		return nil, "", err
	}
	objs, next, err := s.Store.ListPage(ctx, prefix, token, limit)
	for _, o := range objs {
		if err != nil {
			break
		}
		err = s.listed(OpListPage, prefix, o)
	}
	if err = s.after(OpListPage, prefix, err); err != nil {
		return nil, "", err
	}
	return objs, next, nil
}

func (s *Spy) Put(ctx context.Context, key string, body store.Body) error {
	if err := s.before(ctx, OpPut, key); err != nil {
		return err
	}
	return s.after(OpPut, key, s.Store.Put(ctx, key, body))
}

func (s *Spy) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := s.before(ctx, OpGet, key); err != nil {
		return nil, err
	}
	rc, err := s.Store.Get(ctx, key, offset, length)
	if err = s.after(OpGet, key, err); err != nil {
		if rc != nil {
			rc.Close()
		}
		return nil, err
	}
	return rc, nil
}

func (s *Spy) GetVersion(ctx context.Context, key string) (io.ReadCloser, string, error) {
	if err := s.before(ctx, OpGetVersion, key); err != nil {
		return nil, "", err
	}
	rc, etag, err := s.Store.GetVersion(ctx, key)
	if err = s.after(OpGetVersion, key, err); err != nil {
		if rc != nil {
			rc.Close()
		}
		return nil, "", err
	}
	return rc, etag, nil
}

func (s *Spy) GetMetadata(ctx context.Context, key string) (io.ReadCloser, map[string]string, error) {
	if err := s.before(ctx, OpGetMeta, key); err != nil {
		return nil, nil, err
	}
	rc, meta, err := s.Store.GetMetadata(ctx, key)
	if err = s.after(OpGetMeta, key, err); err != nil {
		if rc != nil {
			rc.Close()
		}
		return nil, nil, err
	}
	return rc, meta, nil
}

func (s *Spy) PutIf(ctx context.Context, key string, body store.Body, etag string) error {
	if err := s.before(ctx, OpPutIf, key); err != nil {
		return err
	}
	return s.after(OpPutIf, key, s.Store.PutIf(ctx, key, body, etag))
}

func (s *Spy) Touch(ctx context.Context, key string, size int64) error {
	if err := s.before(ctx, OpTouch, key); err != nil {
		return err
	}
	return s.after(OpTouch, key, s.Store.Touch(ctx, key, size))
}

func (s *Spy) Delete(ctx context.Context, keys []string) error {
	first := ""
	if len(keys) > 0 {
		first = keys[0]
	}
	if err := s.before(ctx, OpDelete, first); err != nil {
		return err
	}
	s.deleted.Add(int64(len(keys)))
	return s.after(OpDelete, first, s.Store.Delete(ctx, keys))
}
