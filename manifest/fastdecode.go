package manifest

import (
	"strconv"
	"time"

	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	digest "github.com/opencontainers/go-digest"
)

// fastDecode decodes the cache config JSON BuildKit and s3cache write
// (known keys, each once, plain ASCII strings, integers, no null) without
// reflection: a manifest of 10,000 records is 5 MB, which encoding/json
// took 70 ms to decode, beside the build, for every merge and import. Any
// other input, valid or not, returns false and goes to encoding/json,
// which then decides; what fastDecode accepts it decodes exactly as
// encoding/json does (FuzzFastDecode).
func fastDecode(dt []byte) (cacheimporttypes.CacheConfig, bool) {
	d := decoder{b: dt}
	var cfg cacheimporttypes.CacheConfig
	d.ws()
	ok := d.object(func(key string) bool {
		switch key {
		case "layers":
			cfg.Layers = []cacheimporttypes.CacheLayer{}
			return d.array(func() bool {
				var l cacheimporttypes.CacheLayer
				if !d.layer(&l) {
					return false
				}
				cfg.Layers = append(cfg.Layers, l)
				return true
			})
		case "records":
			cfg.Records = []cacheimporttypes.CacheRecord{}
			return d.array(func() bool {
				var r cacheimporttypes.CacheRecord
				if !d.record(&r) {
					return false
				}
				cfg.Records = append(cfg.Records, r)
				return true
			})
		}
		return false
	})
	d.ws()
	if !ok || d.failed || d.i != len(d.b) {
		return cacheimporttypes.CacheConfig{}, false
	}
	return cfg, true
}

type decoder struct {
	b      []byte
	i      int
	failed bool
}

func (d *decoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// expect consumes c after whitespace.
func (d *decoder) expect(c byte) bool {
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// peek is the next byte after whitespace, 0 at the end.
func (d *decoder) peek() byte {
	d.ws()
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

// object reads {"key": value, ...}, each key once, value by field.
func (d *decoder) object(field func(key string) bool) bool {
	if !d.expect('{') {
		return false
	}
	if d.peek() == '}' {
		d.i++
		return true
	}
	var seen []string
	for {
		key, ok := d.str()
		if !ok || !d.expect(':') {
			return false
		}
		for _, k := range seen {
			if k == key {
				return false // encoding/json's later-wins rules: not here
			}
		}
		seen = append(seen, key)
		d.ws()
		if !field(key) {
			return false
		}
		switch d.peek() {
		case ',':
			d.i++
		case '}':
			d.i++
			return true
		default:
			return false
		}
	}
}

// array reads [elem, ...].
func (d *decoder) array(elem func() bool) bool {
	if !d.expect('[') {
		return false
	}
	if d.peek() == ']' {
		d.i++
		return true
	}
	for {
		if !elem() {
			return false
		}
		switch d.peek() {
		case ',':
			d.i++
		case ']':
			d.i++
			return true
		default:
			return false
		}
	}
}

// str reads a string of printable ASCII without escapes.
func (d *decoder) str() (string, bool) {
	if !d.expect('"') {
		return "", false
	}
	start := d.i
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			s := string(d.b[start:d.i])
			d.i++
			return s, true
		case c < 0x20 || c >= 0x7f || c == '\\':
			return "", false
		}
		d.i++
	}
	return "", false
}

// integer reads -?(0|[1-9][0-9]*) that fits an int64.
func (d *decoder) integer() (int64, bool) {
	d.ws()
	start := d.i
	if d.i < len(d.b) && d.b[d.i] == '-' {
		d.i++
	}
	digits := d.i
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		d.i++
	}
	if d.i == digits || (d.b[digits] == '0' && d.i-digits > 1) {
		return 0, false
	}
	if d.i < len(d.b) {
		if c := d.b[d.i]; c == '.' || c == 'e' || c == 'E' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(string(d.b[start:d.i]), 10, 64)
	return n, err == nil
}

func (d *decoder) integerInt(v *int) bool {
	n, ok := d.integer()
	if !ok || int64(int(n)) != n {
		return false
	}
	*v = int(n)
	return true
}

// time reads a string as time.Time's UnmarshalJSON does.
func (d *decoder) time(t *time.Time) bool {
	d.ws()
	start := d.i
	if _, ok := d.str(); !ok {
		return false
	}
	return t.UnmarshalJSON(d.b[start:d.i]) == nil
}

func (d *decoder) digest(v *digest.Digest) bool {
	s, ok := d.str()
	*v = digest.Digest(s)
	return ok
}

func (d *decoder) layer(l *cacheimporttypes.CacheLayer) bool {
	return d.object(func(key string) bool {
		switch key {
		case "blob":
			return d.digest(&l.Blob)
		case "parent":
			return d.integerInt(&l.ParentIndex)
		case "annotations":
			a := &cacheimporttypes.LayerAnnotations{}
			l.Annotations = a
			return d.object(func(key string) bool {
				switch key {
				case "mediaType":
					s, ok := d.str()
					a.MediaType = s
					return ok
				case "diffID":
					return d.digest(&a.DiffID)
				case "size":
					n, ok := d.integer()
					a.Size = n
					return ok
				case "createdAt":
					return d.time(&a.CreatedAt)
				}
				return false
			})
		}
		return false
	})
}

func (d *decoder) record(r *cacheimporttypes.CacheRecord) bool {
	return d.object(func(key string) bool {
		switch key {
		case "layers":
			r.Results = []cacheimporttypes.CacheResult{}
			return d.array(func() bool {
				var res cacheimporttypes.CacheResult
				ok := d.object(func(key string) bool {
					switch key {
					case "layer":
						return d.integerInt(&res.LayerIndex)
					case "createdAt":
						return d.time(&res.CreatedAt)
					}
					return false
				})
				r.Results = append(r.Results, res)
				return ok
			})
		case "chains":
			r.ChainedResults = []cacheimporttypes.ChainedResult{}
			return d.array(func() bool {
				var res cacheimporttypes.ChainedResult
				ok := d.object(func(key string) bool {
					switch key {
					case "layers":
						res.LayerIndexes = []int{}
						return d.array(func() bool {
							var n int
							ok := d.integerInt(&n)
							res.LayerIndexes = append(res.LayerIndexes, n)
							return ok
						})
					case "createdAt":
						return d.time(&res.CreatedAt)
					}
					return false
				})
				r.ChainedResults = append(r.ChainedResults, res)
				return ok
			})
		case "digest":
			return d.digest(&r.Digest)
		case "inputs":
			r.Inputs = [][]cacheimporttypes.CacheInput{}
			return d.array(func() bool {
				slot := []cacheimporttypes.CacheInput{}
				ok := d.array(func() bool {
					var in cacheimporttypes.CacheInput
					ok := d.object(func(key string) bool {
						switch key {
						case "selector":
							s, ok := d.str()
							in.Selector = s
							return ok
						case "link":
							return d.integerInt(&in.LinkIndex)
						}
						return false
					})
					slot = append(slot, in)
					return ok
				})
				r.Inputs = append(r.Inputs, slot)
				return ok
			})
		}
		return false
	})
}
