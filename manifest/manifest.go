// Package manifest is the cache config as it lives in the bucket: BuildKit's
// cache/remotecache/v1 CacheConfig JSON, one per cache name. It decodes a
// stored config within bounds, sanitises an untrusted one so BuildKit can
// parse what remains, and maps a layer's annotations to and from its
// descriptor. It knows nothing of the bucket's API (package store) nor of
// BuildKit's solver (package backend), so the bucket commands read
// manifests without the importer.
package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
)

// DefaultMaxSize bounds the cache config we read from a bucket, so a
// hostile or broken manifest cannot make us allocate without limit.
const DefaultMaxSize = 64 << 20

// Decode decodes a cache config JSON document: one object, nothing after it.
func Decode(dt []byte, config *cacheimporttypes.CacheConfig) error {
	if config.Layers == nil && config.Records == nil {
		if cfg, ok := fastDecode(dt); ok {
			*config = cfg
			return nil
		}
	}
	return decodeJSON(dt, config)
}

// decodeJSON is Decode by encoding/json.
func decodeJSON(dt []byte, config *cacheimporttypes.CacheConfig) error {
	dec := json.NewDecoder(bytes.NewReader(dt))
	if err := dec.Decode(config); err != nil {
		return fmt.Errorf("decode cache config: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("decode cache config: unexpected data after the JSON object")
	}
	return nil
}
