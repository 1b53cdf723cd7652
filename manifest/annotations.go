package manifest

import (
	"errors"
	"fmt"
	"time"

	"github.com/containerd/containerd/v2/pkg/labels"
	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// CreatedAtAnnotation is where BuildKit keeps a layer's creation time on
// its descriptor.
const CreatedAtAnnotation = "buildkit/createdat"

// LayerAnnotations are what upstream writes for a layer with this
// descriptor: mediaType, diffID, size and createdAt.
func LayerAnnotations(desc ocispecs.Descriptor) (*cacheimporttypes.LayerAnnotations, error) {
	v, ok := desc.Annotations[labels.LabelUncompressed]
	if !ok {
		return nil, errors.New("descriptor has no uncompressed digest annotation")
	}
	diffID, err := digest.Parse(v)
	if err != nil {
		return nil, fmt.Errorf("parse uncompressed digest annotation: %w", err)
	}
	la := &cacheimporttypes.LayerAnnotations{
		DiffID:    diffID,
		Size:      desc.Size,
		MediaType: desc.MediaType,
	}
	if v, ok := desc.Annotations[CreatedAtAnnotation]; ok {
		var t time.Time
		if err := t.UnmarshalText([]byte(v)); err != nil {
			return nil, fmt.Errorf("parse %s annotation: %w", CreatedAtAnnotation, err)
		}
		la.CreatedAt = t.UTC()
	}
	return la, nil
}

// Descriptor is the descriptor of a stored layer's blob, its annotations
// turned back into the ones BuildKit keeps on a descriptor.
func Descriptor(l cacheimporttypes.CacheLayer) (ocispecs.Descriptor, error) {
	if l.Annotations == nil {
		return ocispecs.Descriptor{}, errors.New("cache layer has no annotations")
	}
	if l.Annotations.DiffID == "" {
		return ocispecs.Descriptor{}, errors.New("cache layer has no diffID")
	}
	annotations := map[string]string{labels.LabelUncompressed: l.Annotations.DiffID.String()}
	if !l.Annotations.CreatedAt.IsZero() {
		txt, err := l.Annotations.CreatedAt.MarshalText()
		if err != nil {
			return ocispecs.Descriptor{}, fmt.Errorf("format createdAt: %w", err)
		}
		annotations[CreatedAtAnnotation] = string(txt)
	}
	return ocispecs.Descriptor{
		MediaType:   l.Annotations.MediaType,
		Digest:      l.Blob,
		Size:        l.Annotations.Size,
		Annotations: annotations,
	}, nil
}
