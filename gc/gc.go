package gc

import (
	"fmt"
	"time"

	"github.com/s3cache/s3cache/inventory"
	"github.com/s3cache/s3cache/store"
)

const (
	// DefaultGrace protects the blobs of exports in flight: an export
	// uploads its blobs before its manifest, and may reuse an old blob.
	DefaultGrace = time.Hour
	// DefaultBatchSize is the number of blobs re-checked and deleted
	// together: one DeleteObjects request.
	DefaultBatchSize = 1000
	// NoLimit disables KeepStorage.
	NoLimit = -1
	// maxShardPages bounds the LIST requests that re-check one shard.
	maxShardPages = 4
	// maxShardDigits bounds the shard prefix: 16^8 shards are plenty.
	maxShardDigits = 8
)

// Options tune prune.
type Options struct {
	// Grace: blobs last modified within it before the plan are kept.
	Grace time.Duration
	// KeepDuration > 0 drops caches whose manifest was not written within it.
	KeepDuration time.Duration
	// KeepStorage >= 0 drops the least recently written caches until the
	// blobs the others name hold at most this many bytes; NoLimit disables it.
	KeepStorage int64
	// Force sweeps even when some manifests cannot be read, whose blobs are
	// then taken for garbage.
	Force bool
	// BatchSize is the number of blobs deleted per request (0: DefaultBatchSize).
	BatchSize int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Inventory tunes the reading of the bucket, progress included.
	Inventory inventory.Options
}

func (o Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func (o Options) batchSize() int {
	if o.BatchSize > 0 {
		return min(o.BatchSize, 1000)
	}
	return DefaultBatchSize
}

func (o Options) parallelism() int {
	if o.Inventory.Parallelism > 0 {
		return o.Inventory.Parallelism
	}
	return inventory.DefaultParallelism
}

func (o Options) progressf(format string, args ...any) {
	if o.Inventory.Progress != nil {
		o.Inventory.Progress(fmt.Sprintf(format, args...))
	}
}

// Pruner plans and runs prune on one bucket layout.
type Pruner struct {
	st     store.Store
	layout store.Layout
	opts   Options
}

// New returns a Pruner.
func New(st store.Store, l store.Layout, opts Options) *Pruner {
	return &Pruner{st: st, layout: l, opts: opts}
}
