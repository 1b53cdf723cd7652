package signature

import (
	"encoding/json"
	"fmt"
	"testing"
)

// manifestOf10k is a cache config of 10,000 records (and as many layers),
// the size the issue asks the cost of.
func manifestOf10k(b *testing.B) []byte {
	type rec struct {
		Digest  string  `json:"digest"`
		Results []any   `json:"layers"`
		Inputs  [][]any `json:"inputs"`
	}
	var layers []map[string]any
	var recs []rec
	for i := range 10000 {
		layers = append(layers, map[string]any{
			"blob":        fmt.Sprintf("sha256:%064x", i),
			"parent":      i - 1,
			"annotations": map[string]any{"io.containerd.uncompressed": fmt.Sprintf("sha256:%064x", i+1<<20), "size": 1 << 20},
		})
		recs = append(recs, rec{
			Digest:  fmt.Sprintf("sha256:%064x", i+1<<30),
			Results: []any{map[string]any{"layer": i, "createdAt": "2026-12-01T00:00:00Z"}},
			Inputs:  [][]any{{map[string]any{"selector": "", "link": max(i-1, 0)}}},
		})
	}
	dt, err := json.Marshal(map[string]any{"layers": layers, "records": recs})
	if err != nil {
		b.Fatal(err)
	}
	return dt
}

func BenchmarkSign10kRecords(b *testing.B) {
	k := newKey(b)
	dt := manifestOf10k(b)
	b.SetBytes(int64(len(dt)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := Sign(k, "main", dt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify10kRecords(b *testing.B) {
	k := newKey(b)
	dt := manifestOf10k(b)
	value, err := Sign(k, "main", dt)
	if err != nil {
		b.Fatal(err)
	}
	keys := []PublicKey{newKey(b).Public(), k.Public()}
	b.SetBytes(int64(len(dt)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := Verify(keys, "main", dt, value); err != nil {
			b.Fatal(err)
		}
	}
}

func TestGenerateNilReader(t *testing.T) {
	if k, err := Generate(nil); err != nil || k.IsZero() {
		t.Fatal(k, err)
	}
}
