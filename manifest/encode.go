package manifest

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
)

// Encode is json.Marshal(cfg), byte for byte, without reflection: a merged
// manifest of 10,000 records is 5 MB of JSON written on the export's
// critical path, and encoding/json took 40-60 ms of it. FuzzEncode holds
// it to json.Marshal.
func Encode(cfg *cacheimporttypes.CacheConfig) ([]byte, error) {
	e := encoder{b: make([]byte, 0, 64+len(cfg.Layers)*330+len(cfg.Records)*170)}
	e.b = append(e.b, '{')
	first := true
	if len(cfg.Layers) > 0 {
		e.field(&first, "layers")
		e.array(len(cfg.Layers), func(i int) { e.layer(&cfg.Layers[i]) })
	}
	if len(cfg.Records) > 0 {
		e.field(&first, "records")
		e.array(len(cfg.Records), func(i int) { e.record(&cfg.Records[i]) })
	}
	e.b = append(e.b, '}')
	if e.err != nil {
		return nil, e.err
	}
	return e.b, nil
}

type encoder struct {
	b   []byte
	err error
}

// array writes [elem(0),elem(1),...] for n elements.
func (e *encoder) array(n int, elem func(i int)) {
	e.b = append(e.b, '[')
	for i := range n {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		elem(i)
	}
	e.b = append(e.b, ']')
}

// field starts a field of an object whose first field may have been
// omitted: first says whether one was written already.
func (e *encoder) field(first *bool, name string) {
	if !*first {
		e.b = append(e.b, ',')
	}
	*first = false
	e.b = append(e.b, '"')
	e.b = append(e.b, name...)
	e.b = append(e.b, '"', ':')
}

func (e *encoder) layer(l *cacheimporttypes.CacheLayer) {
	e.b = append(e.b, '{')
	first := true
	if l.Blob != "" {
		e.field(&first, "blob")
		e.str(string(l.Blob))
	}
	if l.ParentIndex != 0 {
		e.field(&first, "parent")
		e.b = strconv.AppendInt(e.b, int64(l.ParentIndex), 10)
	}
	if a := l.Annotations; a != nil {
		e.field(&first, "annotations")
		e.b = append(e.b, '{')
		af := true
		if a.MediaType != "" {
			e.field(&af, "mediaType")
			e.str(a.MediaType)
		}
		if a.DiffID != "" {
			e.field(&af, "diffID")
			e.str(string(a.DiffID))
		}
		if a.Size != 0 {
			e.field(&af, "size")
			e.b = strconv.AppendInt(e.b, a.Size, 10)
		}
		e.field(&af, "createdAt")
		e.time(a.CreatedAt)
		e.b = append(e.b, '}')
	}
	e.b = append(e.b, '}')
}

func (e *encoder) record(r *cacheimporttypes.CacheRecord) {
	e.b = append(e.b, '{')
	first := true
	if len(r.Results) > 0 {
		e.field(&first, "layers")
		e.array(len(r.Results), func(i int) {
			e.b = append(e.b, `{"layer":`...)
			e.b = strconv.AppendInt(e.b, int64(r.Results[i].LayerIndex), 10)
			e.b = append(e.b, `,"createdAt":`...)
			e.time(r.Results[i].CreatedAt)
			e.b = append(e.b, '}')
		})
	}
	if len(r.ChainedResults) > 0 {
		e.field(&first, "chains")
		e.array(len(r.ChainedResults), func(i int) {
			e.b = append(e.b, `{"layers":`...)
			e.ints(r.ChainedResults[i].LayerIndexes)
			e.b = append(e.b, `,"createdAt":`...)
			e.time(r.ChainedResults[i].CreatedAt)
			e.b = append(e.b, '}')
		})
	}
	if r.Digest != "" {
		e.field(&first, "digest")
		e.str(string(r.Digest))
	}
	if len(r.Inputs) > 0 {
		e.field(&first, "inputs")
		e.array(len(r.Inputs), func(i int) {
			slot := r.Inputs[i]
			if slot == nil {
				e.b = append(e.b, "null"...)
				return
			}
			e.array(len(slot), func(j int) {
				e.b = append(e.b, '{')
				if slot[j].Selector != "" {
					e.b = append(e.b, `"selector":`...)
					e.str(slot[j].Selector)
					e.b = append(e.b, ',')
				}
				e.b = append(e.b, `"link":`...)
				e.b = strconv.AppendInt(e.b, int64(slot[j].LinkIndex), 10)
				e.b = append(e.b, '}')
			})
		})
	}
	e.b = append(e.b, '}')
}

func (e *encoder) ints(v []int) {
	if v == nil {
		e.b = append(e.b, "null"...)
		return
	}
	e.array(len(v), func(i int) { e.b = strconv.AppendInt(e.b, int64(v[i]), 10) })
}

// str writes s as encoding/json does: plain ASCII as it is, anything it
// would escape (quotes, controls, <, >, &, non-ASCII) through json.Marshal.
func (e *encoder) str(s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			dt, err := json.Marshal(s)
			if err != nil && e.err == nil {
				e.err = fmt.Errorf("encode cache config: %w", err)
			}
			e.b = append(e.b, dt...)
			return
		}
	}
	e.b = append(e.b, '"')
	e.b = append(e.b, s...)
	e.b = append(e.b, '"')
}

// time writes t as its MarshalJSON does (RFC 3339 with nanoseconds, an
// error for a year outside 0-9999).
func (e *encoder) time(t time.Time) {
	e.b = append(e.b, '"')
	b, err := t.AppendText(e.b)
	if err != nil {
		if e.err == nil {
			e.err = fmt.Errorf("encode cache config: json: error calling MarshalJSON for type time.Time: %w", err)
		}
		return
	}
	e.b = append(b, '"')
}
