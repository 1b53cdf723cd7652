package store

import (
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

const (
	mib = 1 << 20
	gib = 1 << 30

	// minPartSize is S3's lower bound for every part but the last.
	minPartSize = 5 * mib
	// maxParts is S3's upper bound on the parts of one upload.
	maxParts = 10000
)

// Options tunes the S3 store. Zero fields take the defaults below.
type Options struct {
	// PartSize is the largest size of an uploaded part (default 32 MiB, at
	// least 5 MiB); an object's parts share its bytes evenly.
	PartSize int64
	// MultipartThreshold: objects of this size or more are uploaded as
	// multipart (default 32 MiB).
	MultipartThreshold int64
	// PartConcurrency is the number of parts in flight per object (default 4).
	PartConcurrency int
	// CopyThreshold: objects of this size or more are touched with a
	// multipart copy, as CopyObject is limited to 5 GiB (default 5 GiB).
	CopyThreshold int64
	// CopyPartSize is the size of a copied part (default 512 MiB, at least 5 MiB).
	CopyPartSize int64
	// DeleteBatch is the number of keys per DeleteObjects request
	// (default and maximum 1000).
	DeleteBatch int
	// ListPageSize is the number of keys one LIST request asks for
	// (default and maximum 1000); tests make it small to get many pages.
	ListPageSize int
	// RetryMaxBackoff caps the SDK retryer's delay between attempts
	// (default the SDK's, 20s); tests make it small to stay quick.
	RetryMaxBackoff time.Duration
	// HTTPClient replaces the client's HTTP client (tests).
	HTTPClient aws.HTTPClient
	// Now is the clock for the touch metadata (default time.Now).
	Now func() time.Time
}

// withDefaults fills zero fields and clamps values S3 would reject.
func (o Options) withDefaults() Options {
	if o.PartSize <= 0 {
		o.PartSize = 32 * mib
	}
	o.PartSize = max(o.PartSize, minPartSize)
	if o.MultipartThreshold <= 0 {
		o.MultipartThreshold = 32 * mib
	}
	if o.PartConcurrency <= 0 {
		o.PartConcurrency = 4
	}
	if o.CopyThreshold <= 0 {
		o.CopyThreshold = 5 * gib
	}
	if o.CopyPartSize <= 0 {
		o.CopyPartSize = 512 * mib
	}
	o.CopyPartSize = min(max(o.CopyPartSize, minPartSize), 5*gib)
	if o.DeleteBatch <= 0 || o.DeleteBatch > 1000 {
		o.DeleteBatch = 1000
	}
	if o.ListPageSize <= 0 || o.ListPageSize > 1000 {
		o.ListPageSize = 1000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}
