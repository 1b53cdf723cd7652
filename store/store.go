// Package store keeps cache objects in an S3 bucket: the key layout of
// BuildKit's `type=s3` cache and the object operations the cache needs.
// It imports nothing of BuildKit.
package store

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotFound is the condition of an object or bucket that does not exist;
// check it with errors.Is.
var ErrNotFound = errors.New("not found")

// ErrBucketNotFound is the condition of a bucket that does not exist, for
// callers that tell it from a missing object: an error matching it also
// matches ErrNotFound.
var ErrBucketNotFound = errors.New("bucket not found")

// Object describes one stored object.
type Object struct {
	Key          string
	Size         int64
	LastModified time.Time
}

// Store is the object operations a cache needs. Every error names the
// operation and key.
type Store interface {
	// Stat returns the object's size and modification time.
	Stat(ctx context.Context, key string) (Object, error)
	// List calls fn for every object whose key starts with prefix, in key order.
	List(ctx context.Context, prefix string, fn func(Object) error) error
	// ListPage returns up to limit objects whose key starts with prefix, in
	// key order, from where token left off (empty: the start), and the token
	// of the next page (empty: this was the last): a caller that may stop
	// early need not pay for a full page.
	ListPage(ctx context.Context, prefix, token string, limit int) (objs []Object, next string, err error)
	// Put stores body under key; large objects are uploaded as multipart,
	// parts in parallel.
	Put(ctx context.Context, key string, body Body) error
	// Get reads length bytes from offset (length < 0: to the end).
	Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
	// GetVersion opens the whole object and returns its ETag, which a
	// later PutIf can require unchanged.
	GetVersion(ctx context.Context, key string) (io.ReadCloser, string, error)
	// GetMetadata opens the whole object and returns the user metadata
	// its Put stored (Body.Metadata; keys lower-case), from the same
	// response as the bytes, so the two are of one version.
	GetMetadata(ctx context.Context, key string) (io.ReadCloser, map[string]string, error)
	// PutIf stores a body of at most a PUT's size under key only if the
	// object's ETag is still etag, or, with NoObject, only if there is no
	// object: else ErrPreconditionFailed. A store that refuses conditional
	// writes fails with ErrConditionalNotSupported.
	PutIf(ctx context.Context, key string, body Body, etag string) error
	// Touch refreshes the object's modification time with a server-side copy
	// onto itself; size selects the multipart copy for very large objects.
	Touch(ctx context.Context, key string, size int64) error
	// Delete removes the keys, in batches; missing keys are not an error.
	Delete(ctx context.Context, keys []string) error
}

// Layout maps blobs and manifests to keys: <prefix><blobs_prefix><digest> and
// <prefix><manifests_prefix><name>, as upstream BuildKit does.
type Layout struct {
	Prefix          string
	BlobsPrefix     string
	ManifestsPrefix string
}

// BlobKey is the key of the blob with the given digest (e.g. "sha256:ab12...").
func (l Layout) BlobKey(digest string) string { return l.Prefix + l.BlobsPrefix + digest }

// ManifestKey is the key of the cache config named name.
func (l Layout) ManifestKey(name string) string { return l.Prefix + l.ManifestsPrefix + name }

// BlobsDir is the key prefix under which every blob lives.
func (l Layout) BlobsDir() string { return l.Prefix + l.BlobsPrefix }

// ManifestsDir is the key prefix under which every manifest lives.
func (l Layout) ManifestsDir() string { return l.Prefix + l.ManifestsPrefix }
