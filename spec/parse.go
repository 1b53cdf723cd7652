package spec

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ParseEntry parses one --cache-to/--cache-from value the way docker buildx
// does (util/buildflags CacheOptionsEntry.UnmarshalText): the value is one
// CSV record of key=value fields, keys lower-cased; a lone field without "="
// is the shorthand for type=registry,ref=<field>. A repeated key keeps its
// last value, as in buildx.
func ParseEntry(s string) (Entry, error) {
	fields, err := csvFields(s)
	if err != nil {
		return Entry{}, err
	}
	if len(fields) == 1 && !strings.Contains(fields[0], "=") {
		return Entry{Type: "registry", Attrs: map[string]string{"ref": fields[0]}}, nil
	}
	e := Entry{Attrs: map[string]string{}}
	for _, field := range fields {
		key, value, ok := strings.Cut(field, "=")
		if !ok {
			return Entry{}, fmt.Errorf("invalid value %s", oneLine(field))
		}
		key = strings.ToLower(key)
		if key == "type" {
			e.Type = value
			continue
		}
		e.Attrs[key] = value
	}
	if e.Type == "" {
		// buildx echoes the whole value here; secrets in it must not be.
		return Entry{}, fmt.Errorf("type required for %q", redactSpec(s, fields))
	}
	return e, nil
}

// ParseEntries parses several values as buildx ParseCacheEntry does: empty
// values are skipped and a value without any "=" is a comma-separated list
// of registry refs, one entry each.
func ParseEntries(in []string) ([]Entry, error) {
	out := make([]Entry, 0, len(in))
	for _, s := range in {
		if s == "" {
			continue
		}
		if !strings.Contains(s, "=") {
			refs, err := csvFields(s)
			if err != nil {
				return nil, err
			}
			for _, ref := range refs {
				// "a,,b" is a stray comma, not an entry with an empty ref.
				if ref == "" {
					continue
				}
				out = append(out, Entry{Type: "registry", Attrs: map[string]string{"ref": ref}})
			}
			continue
		}
		e, err := ParseEntry(s)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// Parse parses a `type=s3,...` value into a validated Config.
func Parse(s string) (Config, error) {
	e, err := ParseEntry(s)
	if err != nil {
		return Config{}, fmt.Errorf("%s%w", errPrefix, err)
	}
	if e.Type != "s3" {
		return Config{}, fmt.Errorf("%stype must be s3, got %q", errPrefix, e.Type)
	}
	return FromAttrs(e.Attrs)
}

// csvFields splits s as exactly one CSV record. A quoted field may span
// lines, but an unquoted newline would start a second record, which buildx
// never sees from a flag value, so it is refused rather than dropped.
func csvFields(s string) ([]string, error) {
	r := csv.NewReader(strings.NewReader(s))
	r.FieldsPerRecord = -1
	fields, err := r.Read()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("empty cache spec")
	}
	if err != nil {
		return nil, err
	}
	if _, err := r.Read(); !errors.Is(err, io.EOF) {
		return nil, errors.New("cache spec must be a single line: found an unquoted newline")
	}
	return fields, nil
}

// oneLine keeps buildx's bare rendering for plain text but quotes anything
// that would break the one-line error rule.
func oneLine(s string) string {
	if q := strconv.Quote(s); q[1:len(q)-1] == s {
		return s
	}
	return strconv.Quote(s)
}

// redactSpec returns s, or when it carries a secret attribute, its fields
// re-encoded with the secret values replaced.
func redactSpec(s string, fields []string) string {
	redacted := false
	out := make([]string, len(fields))
	for i, field := range fields {
		out[i] = field
		if key, value, ok := strings.Cut(field, "="); ok && value != "" && isSecret(strings.ToLower(key)) {
			out[i] = key + "=" + redactedValue
			redacted = true
		}
	}
	if !redacted {
		return s
	}
	var b strings.Builder
	w := csv.NewWriter(&b)
	_ = w.Write(out) // a strings.Builder cannot fail
	w.Flush()
	return strings.TrimSuffix(b.String(), "\n")
}
