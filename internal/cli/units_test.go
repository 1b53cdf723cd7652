package cli

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"1000", 1000},
		{"10GB", 10_000_000_000},
		{"10gb", 10_000_000_000},
		{"10G", 10_000_000_000},
		{"512MiB", 512 << 20},
		{"1.5 TiB", 3 << 39},
		{"1KB", 1000},
		{"1kib", 1024},
		{"2B", 2},
		{" 7 MB ", 7_000_000},
	} {
		got, err := parseSize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "GB", "-1GB", "10 XB", "1.2.3MB", "1e3", "99999999999PB"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestParseDuration(t *testing.T) {
	const day = 24 * time.Hour
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"0s", 0},
		{"0", 0},
		{"90m", 90 * time.Minute},
		{"1h", time.Hour},
		{"7d", 7 * day},
		{"1d12h", day + 12*time.Hour},
		{"30d", 30 * day},
		{"106751d", 106751 * day},
		{"106751d23h47m16.854775807s", time.Duration(math.MaxInt64)},
	} {
		got, err := parseDuration(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "d", "1.5d", "-1h", "-1d", "7days", "1h1d", "forever"} {
		if got, err := parseDuration(in); err == nil {
			t.Errorf("parseDuration(%q) = %v, want an error", in, got)
		}
	}
	// Longer than time.Duration holds (about 292 years): an error, never
	// a wrapped-around negative grace that would sweep every blob.
	for _, in := range []string{"106752d", "4294967295d", "106751d24h", "106751d23h47m16.854775808s", "9999999999h"} {
		got, err := parseDuration(in)
		if err == nil || !strings.Contains(err.Error(), in) {
			t.Errorf("parseDuration(%q) = %v, %v; want an error naming it", in, got, err)
		}
	}
}
