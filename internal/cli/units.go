package cli

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// sizeUnits are the suffixes parseSize accepts (prune's --keep-storage), lower-cased: SI units are
// powers of 1000 (as disks and S3 bills count), IEC units powers of 1024.
var sizeUnits = map[string]float64{
	"":    1,
	"b":   1,
	"k":   1e3,
	"kb":  1e3,
	"m":   1e6,
	"mb":  1e6,
	"g":   1e9,
	"gb":  1e9,
	"t":   1e12,
	"tb":  1e12,
	"p":   1e15,
	"pb":  1e15,
	"kib": 1 << 10,
	"mib": 1 << 20,
	"gib": 1 << 30,
	"tib": 1 << 40,
	"pib": 1 << 50,
}

// parseSize parses a byte size such as "512MiB", "10GB", "1.5 TiB" or
// "1000" (bytes). KB, MB, GB, TB and PB are decimal; KiB, MiB, GiB, TiB and
// PiB binary.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	if num == "" {
		return 0, fmt.Errorf("size %q: want a number with an optional unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)", s)
	}
	mult, ok := sizeUnits[unit]
	if !ok {
		return 0, fmt.Errorf("size %q: unknown unit %q (want B, KB, MB, GB, TB, PB, KiB, MiB, GiB, TiB or PiB)", s, t[i:])
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	n := f * mult
	if n >= math.MaxInt64 {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return int64(n), nil
}

// parseDuration parses a non-negative Go duration ("90m", "12h") that may
// start with a number of days ("7d", "1d12h").
func parseDuration(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	var days time.Duration
	if i := strings.IndexByte(t, 'd'); i >= 0 {
		n, err := strconv.ParseUint(t[:i], 10, 32)
		if err != nil {
			return 0, fmt.Errorf("duration %q: days must be a whole number before \"d\" (e.g. 7d or 1d12h)", s)
		}
		// time.Duration holds about 106,751 days; more would wrap around to
		// a negative grace, which sweeps every unreferenced blob.
		if n > math.MaxInt64/uint64(24*time.Hour) {
			return 0, fmt.Errorf("duration %q is too long: at most %dd", s, math.MaxInt64/uint64(24*time.Hour))
		}
		days = time.Duration(n) * 24 * time.Hour
		t = t[i+1:]
		if t == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(t)
	if err != nil {
		return 0, fmt.Errorf("duration %q: want e.g. 30m, 12h, 7d or 1d12h: %w", s, err)
	}
	if d < 0 {
		return 0, fmt.Errorf("duration %q is negative", s)
	}
	if days > 0 && d > math.MaxInt64-days {
		return 0, fmt.Errorf("duration %q is too long", s)
	}
	return days + d, nil
}
