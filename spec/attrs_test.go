package spec

import (
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"
)

const (
	testSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	testToken  = "FwoGZXIvYXdzEXAMPLETOKEN//////////wEaDJ+secret+token="
)

// attrs returns a minimal valid attribute set with kv (key, value pairs)
// applied; a value of "\x00delete" removes the key.
func attrs(kv ...string) map[string]string {
	m := map[string]string{"region": "us-east-1", "bucket": "my-bucket"}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "\x00delete" {
			delete(m, kv[i])
			continue
		}
		m[kv[i]] = kv[i+1]
	}
	return m
}

// defaults is FromAttrs(attrs()) spelled out.
func defaults() Config {
	return Config{
		Region:            "us-east-1",
		Bucket:            "my-bucket",
		Names:             []string{"buildkit"},
		BlobsPrefix:       "blobs/",
		ManifestsPrefix:   "manifests/",
		UploadParallelism: 4,
		TouchRefresh:      24 * time.Hour,
		MergeKeep:         168 * time.Hour,
	}
}

func intPtr(n int) *int { return &n }

// clearEnv makes the region/bucket fallbacks deterministic on machines
// that have them set; FromAttrs treats an empty variable as unset.
func clearEnv(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_BUCKET", "")
}

func TestFromAttrsValid(t *testing.T) {
	clearEnv(t)
	tests := []struct {
		name  string
		attrs map[string]string
		want  func(*Config)
	}{
		{"defaults", attrs(), func(*Config) {}},
		{"type ignored", attrs("type", "s3"), func(*Config) {}},
		{"region", attrs("region", "eu-west-3"), func(c *Config) { c.Region = "eu-west-3" }},
		{"bucket", attrs("bucket", "other"), func(c *Config) { c.Bucket = "other" }},
		{"name single", attrs("name", "app"), func(c *Config) { c.Names = []string{"app"} }},
		{"name list", attrs("name", "app;base;ci/main"), func(c *Config) { c.Names = []string{"app", "base", "ci/main"} }},
		{"name slash inside", attrs("name", "ci/main/x"), func(c *Config) { c.Names = []string{"ci/main/x"} }},
		{"endpoint_url https", attrs("endpoint_url", "https://minio.example:9000"), func(c *Config) { c.EndpointURL = "https://minio.example:9000" }},
		{"endpoint_url http with path", attrs("endpoint_url", "http://localhost:9000/s3"), func(c *Config) { c.EndpointURL = "http://localhost:9000/s3" }},
		{"endpoint_url empty means unset", attrs("endpoint_url", ""), func(*Config) {}},
		{"use_path_style true", attrs("use_path_style", "true"), func(c *Config) { c.UsePathStyle = true }},
		{"use_path_style 1", attrs("use_path_style", "1"), func(c *Config) { c.UsePathStyle = true }},
		{"use_path_style false", attrs("use_path_style", "false"), func(*Config) {}},
		{"prefix", attrs("prefix", "team/"), func(c *Config) { c.Prefix = "team/" }},
		{"blobs_prefix", attrs("blobs_prefix", "b/"), func(c *Config) { c.BlobsPrefix = "b/" }},
		{"blobs_prefix explicit empty", attrs("blobs_prefix", ""), func(c *Config) { c.BlobsPrefix = "" }},
		{"manifests_prefix", attrs("manifests_prefix", "m/"), func(c *Config) { c.ManifestsPrefix = "m/" }},
		{"manifests_prefix explicit empty", attrs("manifests_prefix", ""), func(c *Config) { c.ManifestsPrefix = "" }},
		{"upload_parallelism", attrs("upload_parallelism", "16"), func(c *Config) { c.UploadParallelism = 16 }},
		{"upload_parallelism 1", attrs("upload_parallelism", "1"), func(c *Config) { c.UploadParallelism = 1 }},
		{"touch_refresh", attrs("touch_refresh", "1h30m"), func(c *Config) { c.TouchRefresh = 90 * time.Minute }},
		{"touch_refresh zero", attrs("touch_refresh", "0"), func(c *Config) { c.TouchRefresh = 0 }},
		{"credentials", attrs("access_key_id", "AKIAEXAMPLE", "secret_access_key", testSecret),
			func(c *Config) { c.AccessKeyID, c.SecretAccessKey = "AKIAEXAMPLE", testSecret }},
		{"credentials with token", attrs("access_key_id", "ASIAEXAMPLE", "secret_access_key", testSecret, "session_token", testToken),
			func(c *Config) {
				c.AccessKeyID, c.SecretAccessKey, c.SessionToken = "ASIAEXAMPLE", testSecret, testToken
			}},
		{"credentials both empty", attrs("access_key_id", "", "secret_access_key", ""), func(*Config) {}},
		{"retry_mode standard", attrs("retry_mode", "standard"), func(c *Config) { c.RetryMode = "standard" }},
		{"retry_mode adaptive", attrs("retry_mode", "adaptive"), func(c *Config) { c.RetryMode = "adaptive" }},
		{"retry_max_attempts", attrs("retry_max_attempts", "10"), func(c *Config) { c.RetryMaxAttempts = 10 }},
		{"disable_accept_encoding", attrs("disable_accept_encoding", "true"), func(c *Config) { c.DisableAcceptEncoding = true }},
		{"mode min", attrs("mode", "min"), func(c *Config) { c.Mode = "min" }},
		{"mode max", attrs("mode", "max"), func(c *Config) { c.Mode = "max" }},
		{"ignore-error", attrs("ignore-error", "true"), func(c *Config) { c.IgnoreError = true }},
		{"ignore-error false", attrs("ignore-error", "false"), func(*Config) {}},
		{"merge", attrs("merge", "true"), func(c *Config) { c.Merge = true }},
		{"merge false", attrs("merge", "0"), func(*Config) {}},
		{"merge_keep", attrs("merge", "true", "merge_keep", "72h"), func(c *Config) { c.Merge, c.MergeKeep = true, 72*time.Hour }},
		{"merge_keep minutes", attrs("merge_keep", "90m"), func(c *Config) { c.MergeKeep = 90 * time.Minute }},
		{"compression uncompressed", attrs("compression", "uncompressed"), func(c *Config) { c.Compression = "uncompressed" }},
		{"compression gzip", attrs("compression", "gzip"), func(c *Config) { c.Compression = "gzip" }},
		{"compression estargz", attrs("compression", "estargz"), func(c *Config) { c.Compression = "estargz" }},
		{"compression zstd", attrs("compression", "zstd"), func(c *Config) { c.Compression = "zstd" }},
		{"compression-level", attrs("compression-level", "19"), func(c *Config) { c.CompressionLevel = intPtr(19) }},
		{"compression-level negative", attrs("compression-level", "-1"), func(c *Config) { c.CompressionLevel = intPtr(-1) }},
		{"compression-level zero", attrs("compression-level", "0"), func(c *Config) { c.CompressionLevel = intPtr(0) }},
		{"force-compression true", attrs("force-compression", "true"), func(c *Config) { c.ForceCompression = true }},
		{"force-compression empty means true", attrs("force-compression", ""), func(c *Config) { c.ForceCompression = true }},
		{"force-compression false", attrs("force-compression", "false"), func(*Config) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FromAttrs(tt.attrs)
			if err != nil {
				t.Fatalf("FromAttrs(%v): %v", tt.attrs, err)
			}
			want := defaults()
			tt.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("FromAttrs(%v)\n got %#v\nwant %#v", tt.attrs, got, want)
			}
		})
	}
}

func TestFromAttrsInvalid(t *testing.T) {
	clearEnv(t)
	tests := []struct {
		name  string
		attrs map[string]string
		want  []string // substrings of the error besides "s3 cache: "
	}{
		{"region missing", attrs("region", "\x00delete"), []string{"region is required", "$AWS_REGION"}},
		{"region empty", attrs("region", ""), []string{"region must be", `got ""`}},
		{"bucket missing", attrs("bucket", "\x00delete"), []string{"bucket is required", "$AWS_BUCKET"}},
		{"bucket empty", attrs("bucket", ""), []string{"bucket must be", `got ""`}},
		{"name empty", attrs("name", ""), []string{"name must be", "non-empty", `got ""`}},
		{"name empty element", attrs("name", "a;;b"), []string{"name must be", `got "a;;b"`}},
		{"name trailing separator", attrs("name", "a;"), []string{"name must be", `got "a;"`}},
		{"name leading separator", attrs("name", ";a"), []string{"name must be", `got ";a"`}},
		{"name ending in slash", attrs("name", "main/"), []string{"name", `must not end in "/"`, `got "main/"`}},
		{"name list element ending in slash", attrs("name", "a;ci/b/;c"), []string{"name", `must not end in "/"`, `got "ci/b/"`}},
		{"name only slash", attrs("name", "/"), []string{"name", `must not end in "/"`}},
		{"endpoint_url no scheme", attrs("endpoint_url", "minio:9000"), []string{"endpoint_url must be an http:// or https:// URL", `got "minio:9000"`}},
		{"endpoint_url host only", attrs("endpoint_url", "minio.example"), []string{"endpoint_url", `got "minio.example"`}},
		{"endpoint_url ftp", attrs("endpoint_url", "ftp://host"), []string{"endpoint_url", `got "ftp://host"`}},
		{"endpoint_url no host", attrs("endpoint_url", "https://"), []string{"endpoint_url", `got "https://"`}},
		{"endpoint_url unparsable", attrs("endpoint_url", "http://[::1"), []string{"endpoint_url", `got "http://[::1"`}},
		{"endpoint_url bad port", attrs("endpoint_url", "http://host:port"), []string{"endpoint_url", `got "http://host:port"`}},
		{"endpoint_url user info", attrs("endpoint_url", "https://AKIA:secret@host"), []string{"endpoint_url must not contain user info", `got "https://xxxxx@host"`}},
		// A "/" in the password makes the URL unparsable; still no leak.
		{"endpoint_url unparsable user info", attrs("endpoint_url", "https://AKIA:"+testSecret+"@host"), []string{"endpoint_url must be an http", `got "https://xxxxx@host"`}},
		{"use_path_style bad", attrs("use_path_style", "yes"), []string{"use_path_style must be a boolean (true or false)", `got "yes"`}},
		{"use_path_style empty", attrs("use_path_style", ""), []string{"use_path_style must be a boolean", `got ""`}},
		{"upload_parallelism non-numeric", attrs("upload_parallelism", "four"), []string{"upload_parallelism must be a positive integer", `got "four"`}},
		{"upload_parallelism zero", attrs("upload_parallelism", "0"), []string{"upload_parallelism must be a positive integer", `got "0"`}},
		{"upload_parallelism negative", attrs("upload_parallelism", "-2"), []string{"upload_parallelism", `got "-2"`}},
		{"upload_parallelism empty", attrs("upload_parallelism", ""), []string{"upload_parallelism", `got ""`}},
		{"upload_parallelism overflow", attrs("upload_parallelism", "99999999999999999999"), []string{"upload_parallelism", `got "99999999999999999999"`}},
		{"touch_refresh no unit", attrs("touch_refresh", "24"), []string{"touch_refresh must be a non-negative duration", `got "24"`}},
		{"touch_refresh negative", attrs("touch_refresh", "-1h"), []string{"touch_refresh", `got "-1h"`}},
		{"touch_refresh garbage", attrs("touch_refresh", "daily"), []string{"touch_refresh", `got "daily"`}},
		{"touch_refresh empty", attrs("touch_refresh", ""), []string{"touch_refresh", `got ""`}},
		{"secret without key id", attrs("secret_access_key", testSecret), []string{"access_key_id and secret_access_key must be set together"}},
		{"key id without secret", attrs("access_key_id", "AKIAEXAMPLE"), []string{"access_key_id and secret_access_key must be set together"}},
		{"key id with empty secret", attrs("access_key_id", "AKIAEXAMPLE", "secret_access_key", ""), []string{"access_key_id and secret_access_key"}},
		{"session_token alone", attrs("session_token", testToken), []string{"session_token requires access_key_id and secret_access_key"}},
		{"session_token with secret only", attrs("session_token", testToken, "secret_access_key", testSecret), []string{"access_key_id and secret_access_key must be set together"}},
		{"retry_mode unknown", attrs("retry_mode", "legacy"), []string{"retry_mode must be one of standard, adaptive", `got "legacy"`}},
		{"retry_mode case", attrs("retry_mode", "Standard"), []string{"retry_mode", `got "Standard"`}},
		{"retry_mode empty", attrs("retry_mode", ""), []string{"retry_mode", `got ""`}},
		{"retry_max_attempts zero", attrs("retry_max_attempts", "0"), []string{"retry_max_attempts must be a positive integer", `got "0"`}},
		{"retry_max_attempts negative", attrs("retry_max_attempts", "-1"), []string{"retry_max_attempts", `got "-1"`}},
		{"retry_max_attempts non-numeric", attrs("retry_max_attempts", "3x"), []string{"retry_max_attempts", `got "3x"`}},
		{"disable_accept_encoding bad", attrs("disable_accept_encoding", "on"), []string{"disable_accept_encoding must be a boolean", `got "on"`}},
		{"mode unknown", attrs("mode", "all"), []string{"mode must be one of min, max", `got "all"`}},
		{"mode empty", attrs("mode", ""), []string{"mode must be one of", `got ""`}},
		{"ignore-error bad", attrs("ignore-error", "maybe"), []string{"ignore-error must be a boolean", `got "maybe"`}},
		{"ignore-error empty", attrs("ignore-error", ""), []string{"ignore-error must be a boolean", `got ""`}},
		{"merge bad", attrs("merge", "yes"), []string{"merge must be a boolean", `got "yes"`}},
		{"merge empty", attrs("merge", ""), []string{"merge must be a boolean", `got ""`}},
		{"merge_keep days", attrs("merge_keep", "7d"), []string{"merge_keep must be a positive duration", `got "7d"`}},
		{"merge_keep zero", attrs("merge_keep", "0s"), []string{"merge_keep must be a positive duration", `got "0s"`}},
		{"merge_keep negative", attrs("merge_keep", "-1h"), []string{"merge_keep", `got "-1h"`}},
		{"merge_keep empty", attrs("merge_keep", ""), []string{"merge_keep", `got ""`}},
		{"compression unknown", attrs("compression", "lz4"), []string{"compression must be one of uncompressed, gzip, estargz, zstd", `got "lz4"`}},
		{"compression empty", attrs("compression", ""), []string{"compression must be one of", `got ""`}},
		{"compression-level non-numeric", attrs("compression-level", "best"), []string{"compression-level must be an integer", `got "best"`}},
		{"compression-level empty", attrs("compression-level", ""), []string{"compression-level must be an integer", `got ""`}},
		{"force-compression bad", attrs("force-compression", "always"), []string{"force-compression must be a boolean", `got "always"`}},
		// The first error in attribute order wins, whatever the map order.
		{"first error wins", attrs("mode", "all", "upload_parallelism", "0", "name", ""), []string{"name must be"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 5 { // map order must not change the error
				c, err := FromAttrs(tt.attrs)
				if err == nil {
					t.Fatalf("FromAttrs(%v) = %v, want error", tt.attrs, c)
				}
				checkError(t, err, tt.want...)
			}
		})
	}
}

// checkError asserts the shared error rules: one line, the package prefix,
// the wanted substrings and no secret values.
func checkError(t *testing.T, err error, want ...string) {
	t.Helper()
	msg := err.Error()
	if !strings.HasPrefix(msg, "s3 cache: ") {
		t.Errorf("error %q lacks the %q prefix", msg, "s3 cache: ")
	}
	if strings.ContainsAny(msg, "\r\n") {
		t.Errorf("error %q spans lines", msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not mention %q", msg, w)
		}
	}
	for _, s := range []string{testSecret, testToken} {
		if strings.Contains(msg, s) {
			t.Errorf("error %q leaks a secret", msg)
		}
	}
}

func TestFromAttrsEnvFallback(t *testing.T) {
	t.Setenv("AWS_REGION", "ap-south-1")
	t.Setenv("AWS_BUCKET", "env-bucket")
	c, err := FromAttrs(map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Region != "ap-south-1" || c.Bucket != "env-bucket" {
		t.Errorf("env fallback: got region %q bucket %q", c.Region, c.Bucket)
	}
	c, err = FromAttrs(attrs())
	if err != nil {
		t.Fatal(err)
	}
	if c.Region != "us-east-1" || c.Bucket != "my-bucket" {
		t.Errorf("attributes must win over env: got region %q bucket %q", c.Region, c.Bucket)
	}
	// An explicit empty value is an error, not a request for the fallback.
	if _, err := FromAttrs(attrs("region", "")); err == nil {
		t.Error("region= with $AWS_REGION set: want error")
	}
}

func TestFromAttrsWarnings(t *testing.T) {
	clearEnv(t)
	tests := []struct {
		name  string
		attrs map[string]string
		want  []string
	}{
		{"none", attrs(), nil},
		{"type is not unknown", attrs("type", "s3"), nil},
		{"typo", attrs("upload_paralelism", "8"),
			[]string{`unknown attribute "upload_paralelism" ignored; did you mean "upload_parallelism"?`}},
		{"underscore for dash", attrs("ignore_error", "true"),
			[]string{`unknown attribute "ignore_error" ignored; did you mean "ignore-error"?`}},
		{"dash for underscore", attrs("touch-refresh", "1h"),
			[]string{`unknown attribute "touch-refresh" ignored; did you mean "touch_refresh"?`}},
		{"case variant", attrs("Region", "x"),
			[]string{`unknown attribute "Region" ignored; did you mean "region"?`}},
		{"transposition", attrs("bukcet", "x"),
			[]string{`unknown attribute "bukcet" ignored; did you mean "bucket"?`}},
		{"no suggestion", attrs("foo", "bar"), []string{`unknown attribute "foo" ignored`}},
		{"sorted", attrs("zzz", "1", "aaa", "2", "endpoint", "http://x"), []string{
			`unknown attribute "aaa" ignored`,
			`unknown attribute "endpoint" ignored`,
			`unknown attribute "zzz" ignored`,
		}},
		{"secret-looking key, value not shown", attrs("secret_acess_key", testSecret),
			[]string{`unknown attribute "secret_acess_key" ignored; did you mean "secret_access_key"?`}},
		{"control characters quoted", attrs("a\nb", "1"), []string{`unknown attribute "a\nb" ignored`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := FromAttrs(tt.attrs)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Warnings, tt.want) {
				t.Errorf("warnings\n got %q\nwant %q", c.Warnings, tt.want)
			}
		})
	}
}

func TestSuggest(t *testing.T) {
	tests := map[string]string{
		"upload_paralelism":        "upload_parallelism",
		"IGNORE_ERROR":             "ignore-error",
		"forcecompression":         "force-compression",
		"compression_level":        "compression-level",
		"retry_max_attempt":        "retry_max_attempts",
		"endpoint-url":             "endpoint_url",
		"use-path-style":           "use_path_style",
		"regoin":                   "region",
		"names":                    "name",
		"foo":                      "",
		"":                         "",
		"completely_unknown":       "",
		strings.Repeat("x", 10000): "",
	}
	for key, want := range tests {
		if got := suggest(key); got != want {
			t.Errorf("suggest(%.20q) = %q, want %q", key, got, want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"abc", "abc", 0},
		{"abc", "acb", 1},
		{"abc", "ab", 1},
		{"kitten", "sitting", 3},
		{"ca", "abc", 3}, // OSA, not unrestricted Damerau-Levenshtein (2)
	}
	for _, tt := range tests {
		if got := editDistance([]rune(tt.a), []rune(tt.b), 100); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := editDistance([]rune(tt.a), []rune(tt.b), 2); got != min(tt.want, 2) {
			t.Errorf("editDistance(%q, %q, limit 2) = %d, want %d", tt.a, tt.b, got, min(tt.want, 2))
		}
	}
}

func TestAttrsRoundTrip(t *testing.T) {
	clearEnv(t)
	tests := []map[string]string{
		attrs(),
		attrs("name", "a;b;c", "endpoint_url", "http://127.0.0.1:9000", "use_path_style", "true"),
		attrs("prefix", "p/", "blobs_prefix", "", "manifests_prefix", "m/"),
		attrs("upload_parallelism", "1", "touch_refresh", "0s", "retry_mode", "adaptive", "retry_max_attempts", "7"),
		attrs("touch_refresh", "1h30m", "upload_parallelism", "4"),
		attrs("access_key_id", "AKIAEXAMPLE", "secret_access_key", testSecret, "session_token", testToken),
		attrs("mode", "max", "ignore-error", "true", "disable_accept_encoding", "1"),
		attrs("merge", "true", "merge_keep", "36h"),
		attrs("merge", "true", "merge_keep", "168h"),
		attrs("compression", "zstd", "compression-level", "0", "force-compression", ""),
		attrs("compression", "gzip", "compression-level", "-3", "force-compression", "false"),
	}
	for _, in := range tests {
		c, err := FromAttrs(in)
		if err != nil {
			t.Fatalf("FromAttrs(%v): %v", in, err)
		}
		out := c.Attrs()
		c2, err := FromAttrs(out)
		if err != nil {
			t.Fatalf("FromAttrs(Attrs() = %v): %v", out, err)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Errorf("round trip of %v via %v\n got %#v\nwant %#v", in, out, c2, c)
		}
	}
}

func TestAttrsOmitsDefaults(t *testing.T) {
	got := defaults().Attrs()
	want := map[string]string{"region": "us-east-1", "bucket": "my-bucket", "name": "buildkit"}
	if !maps.Equal(got, want) {
		t.Errorf("defaults().Attrs() = %v, want %v", got, want)
	}
	c := defaults()
	c.AccessKeyID, c.SecretAccessKey, c.SessionToken = "AKIAEXAMPLE", testSecret, testToken
	a := c.Attrs()
	if a["secret_access_key"] != testSecret || a["session_token"] != testToken {
		t.Errorf("Attrs must carry the credentials, got %v", a)
	}
}

func TestHasCredentials(t *testing.T) {
	c := defaults()
	if c.HasCredentials() {
		t.Error("defaults: HasCredentials() = true")
	}
	c.AccessKeyID, c.SecretAccessKey = "AKIAEXAMPLE", testSecret
	if !c.HasCredentials() {
		t.Error("with access key: HasCredentials() = false")
	}
}
