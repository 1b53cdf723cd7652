// Package spec turns a `type=s3,...` cache spec into a typed, validated Config.
package spec

import (
	"time"

	"github.com/s3cache/s3cache/signature"
)

// Defaults of the reference `type=s3` backend.
const (
	DefaultName              = "buildkit"
	DefaultBlobsPrefix       = "blobs/"
	DefaultManifestsPrefix   = "manifests/"
	DefaultUploadParallelism = 4
	DefaultTouchRefresh      = 24 * time.Hour
	DefaultMergeKeep         = 168 * time.Hour
)

// Entry is one parsed --cache-to/--cache-from value of any type, as buildx
// produces it: the type and the other attributes, keys lower-cased.
type Entry struct {
	Type  string
	Attrs map[string]string
}

// Config is a validated `type=s3` spec.
type Config struct {
	Region          string
	Bucket          string
	Names           []string // at least one, none empty
	EndpointURL     string
	UsePathStyle    bool
	Prefix          string
	BlobsPrefix     string
	ManifestsPrefix string

	UploadParallelism int
	TouchRefresh      time.Duration

	AccessKeyID     string
	SecretAccessKey string // secret: never printed
	SessionToken    string // secret: never printed

	RetryMode             string // "", "standard" or "adaptive"; "" keeps the SDK default
	RetryMaxAttempts      int    // 0 keeps the SDK default
	DisableAcceptEncoding bool

	Mode        string // "", "min" or "max" (cache-to); "" means BuildKit's default, min
	IgnoreError bool   // cache-to: a failed export warns instead of failing the build

	// cache-to: merge this export's records into the manifest already
	// under each name instead of replacing it, dropping other writers'
	// results older than MergeKeep.
	Merge     bool
	MergeKeep time.Duration

	// cache-to: sign each manifest written (secret: never printed).
	SigningKey signature.PrivateKey
	// cache-from: use a manifest only if one of these signed it for its
	// name; none: any manifest, as upstream.
	VerifyKeys []signature.PublicKey
	// cache-from: send requests unsigned and look up no credentials.
	Anonymous bool

	// Layer compression of the exported blobs, as BuildKit's registry cache.
	Compression      string // "", "uncompressed", "gzip", "estargz" or "zstd"
	CompressionLevel *int
	ForceCompression bool

	// Warnings about attributes that were accepted but not understood.
	Warnings []string
}
