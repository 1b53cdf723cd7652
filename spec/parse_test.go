package spec

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseEntry(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Entry
		wantErr string // substring; "" means success
	}{
		{name: "s3", in: "type=s3,region=us-east-1,bucket=b",
			want: Entry{Type: "s3", Attrs: map[string]string{"region": "us-east-1", "bucket": "b"}}},
		{name: "keys lower-cased", in: "Type=s3,Region=x,UPLOAD_PARALLELISM=2",
			want: Entry{Type: "s3", Attrs: map[string]string{"region": "x", "upload_parallelism": "2"}}},
		{name: "values keep case", in: "type=S3,prefix=A/B",
			want: Entry{Type: "S3", Attrs: map[string]string{"prefix": "A/B"}}},
		{name: "quoted field with separator", in: `type=s3,"name=a;b"`,
			want: Entry{Type: "s3", Attrs: map[string]string{"name": "a;b"}}},
		{name: "quoted field with comma", in: `type=s3,"prefix=a,b",bucket=c`,
			want: Entry{Type: "s3", Attrs: map[string]string{"prefix": "a,b", "bucket": "c"}}},
		{name: "quoted field with escaped quote", in: `type=s3,"prefix=a""b"`,
			want: Entry{Type: "s3", Attrs: map[string]string{"prefix": `a"b`}}},
		{name: "quoted field spanning lines", in: "type=s3,\"prefix=a\nb\"",
			want: Entry{Type: "s3", Attrs: map[string]string{"prefix": "a\nb"}}},
		{name: "value containing =", in: "type=s3,endpoint_url=http://h/?a=b",
			want: Entry{Type: "s3", Attrs: map[string]string{"endpoint_url": "http://h/?a=b"}}},
		{name: "empty value", in: "type=s3,prefix=",
			want: Entry{Type: "s3", Attrs: map[string]string{"prefix": ""}}},
		{name: "last duplicate wins", in: "type=s3,name=a,name=b",
			want: Entry{Type: "s3", Attrs: map[string]string{"name": "b"}}},
		{name: "trailing newline", in: "type=s3,region=x\n",
			want: Entry{Type: "s3", Attrs: map[string]string{"region": "x"}}},
		{name: "type only", in: "type=gha",
			want: Entry{Type: "gha", Attrs: map[string]string{}}},
		{name: "registry shorthand", in: "user/app:cache",
			want: Entry{Type: "registry", Attrs: map[string]string{"ref": "user/app:cache"}}},
		{name: "quoted registry shorthand", in: `"user/app:cache"`,
			want: Entry{Type: "registry", Attrs: map[string]string{"ref": "user/app:cache"}}},
		{name: "registry explicit", in: "type=registry,ref=user/app:cache,mode=max",
			want: Entry{Type: "registry", Attrs: map[string]string{"ref": "user/app:cache", "mode": "max"}}},

		// As in buildx and encoding/csv, a quote must open the field: quote
		// the whole "key=value", not the value.
		{name: "quote inside field", in: `type=s3,name="x,y"`, wantErr: "bare \" in non-quoted-field"},
		{name: "unbalanced quote", in: `type=s3,"name=a`, wantErr: `extraneous or missing " in quoted-field`},
		{name: "text after closing quote", in: `type=s3,"name=a"b`, wantErr: `extraneous or missing "`},
		{name: "field without =", in: "type=s3,region", wantErr: "invalid value region"},
		{name: "field without = quoted in error", in: "type=s3,\"a\nb\"", wantErr: `invalid value "a\nb"`},
		{name: "missing type", in: "region=x,bucket=y", wantErr: `type required for "region=x,bucket=y"`},
		{name: "empty type", in: "type=,region=x", wantErr: `type required for "type=,region=x"`},
		{name: "missing type redacts secrets", in: "region=x,access_key_id=AKIA,secret_access_key=" + testSecret + ",Session_Token=" + testToken,
			wantErr: `type required for "region=x,access_key_id=AKIA,secret_access_key=<redacted>,Session_Token=<redacted>"`},
		{name: "empty", in: "", wantErr: "empty cache spec"},
		{name: "blank line", in: "\n", wantErr: "empty cache spec"},
		{name: "two lines", in: "type=s3,region=x\nbucket=y", wantErr: "single line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEntry(tt.in)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseEntry(%q) = %+v, want error containing %q", tt.in, got, tt.wantErr)
				}
				msg := err.Error()
				if !strings.Contains(msg, tt.wantErr) {
					t.Errorf("ParseEntry(%q) error %q, want it to contain %q", tt.in, msg, tt.wantErr)
				}
				if strings.ContainsAny(msg, "\r\n") || strings.Contains(msg, testSecret) || strings.Contains(msg, testToken) {
					t.Errorf("ParseEntry(%q) error %q spans lines or leaks a secret", tt.in, msg)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseEntry(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseEntry(%q)\n got %+v\nwant %+v", tt.in, got, tt.want)
			}
		})
	}
}

func reg(ref string) Entry {
	return Entry{Type: "registry", Attrs: map[string]string{"ref": ref}}
}

func TestParseEntries(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    []Entry
		wantErr string
	}{
		{name: "nil", in: nil, want: []Entry{}},
		{name: "empty strings skipped", in: []string{"", ""}, want: []Entry{}},
		{name: "one ref", in: []string{"user/app:cache"}, want: []Entry{reg("user/app:cache")}},
		{name: "ref list", in: []string{"user/app:cache,user/app:main"},
			want: []Entry{reg("user/app:cache"), reg("user/app:main")}},
		{name: "ref list stray comma", in: []string{"a,,b"}, want: []Entry{reg("a"), reg("b")}},
		{name: "mixed", in: []string{"", "a,b", "type=s3,region=x"}, want: []Entry{
			reg("a"), reg("b"),
			{Type: "s3", Attrs: map[string]string{"region": "x"}},
		}},
		{name: "quoted ref", in: []string{`"a,b",c`}, want: []Entry{reg("a,b"), reg("c")}},
		{name: "bad ref list", in: []string{`"a`}, wantErr: "quoted-field"},
		{name: "bad entry", in: []string{"a", "type=s3,x"}, wantErr: "invalid value x"},
		{name: "missing type", in: []string{"region=x"}, wantErr: "type required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEntries(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseEntries(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseEntries(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseEntries(%q)\n got %+v\nwant %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	clearEnv(t)
	t.Run("full", func(t *testing.T) {
		in := `type=s3,region=eu-central-1,bucket=cache,"name=app;base",endpoint_url=http://minio:9000,use_path_style=true,` +
			`prefix=ci/,blobs_prefix=b/,manifests_prefix=m/,upload_parallelism=8,touch_refresh=12h,` +
			`access_key_id=AKIAEXAMPLE,secret_access_key=` + testSecret + `,retry_mode=adaptive,retry_max_attempts=5,` +
			`disable_accept_encoding=true,mode=max,ignore-error=true,merge=true,merge_keep=72h,compression=zstd,compression-level=3,force-compression=true`
		got, err := Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		want := Config{
			Region: "eu-central-1", Bucket: "cache", Names: []string{"app", "base"},
			EndpointURL: "http://minio:9000", UsePathStyle: true,
			Prefix: "ci/", BlobsPrefix: "b/", ManifestsPrefix: "m/",
			UploadParallelism: 8, TouchRefresh: 12 * 60 * 60 * 1e9,
			AccessKeyID: "AKIAEXAMPLE", SecretAccessKey: testSecret,
			RetryMode: "adaptive", RetryMaxAttempts: 5, DisableAcceptEncoding: true,
			Mode: "max", IgnoreError: true, Merge: true, MergeKeep: 72 * time.Hour,
			Compression: "zstd", CompressionLevel: intPtr(3), ForceCompression: true,
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Parse\n got %#v\nwant %#v", got, want)
		}
	})
	t.Run("case-insensitive keys", func(t *testing.T) {
		got, err := Parse("Type=s3,Region=x,BUCKET=y,Upload_Parallelism=2")
		if err != nil {
			t.Fatal(err)
		}
		if got.Region != "x" || got.Bucket != "y" || got.UploadParallelism != 2 {
			t.Errorf("Parse: %v", got)
		}
	})
	t.Run("warnings", func(t *testing.T) {
		got, err := Parse("type=s3,region=x,bucket=y,upload_paralelism=8")
		if err != nil {
			t.Fatal(err)
		}
		want := []string{`unknown attribute "upload_paralelism" ignored; did you mean "upload_parallelism"?`}
		if !reflect.DeepEqual(got.Warnings, want) {
			t.Errorf("Warnings = %q, want %q", got.Warnings, want)
		}
	})
	errTests := []struct{ in, want string }{
		{"user/app:cache", `s3 cache: type must be s3, got "registry"`},
		{"type=registry,ref=x", `s3 cache: type must be s3, got "registry"`},
		{"type=S3,region=x,bucket=y", `s3 cache: type must be s3, got "S3"`},
		{"region=x,bucket=y", `s3 cache: type required for "region=x,bucket=y"`},
		{"type=s3,region", "s3 cache: invalid value region"},
		{`type=s3,"region=x`, "s3 cache: parse error"},
		{"", "s3 cache: empty cache spec"},
		{"type=s3,bucket=y", "s3 cache: region is required"},
		{"type=s3,region=x,bucket=y,upload_parallelism=0", `s3 cache: upload_parallelism must be a positive integer, got "0"`},
		{"type=s3,region=x,bucket=y,secret_access_key=" + testSecret, "s3 cache: access_key_id and secret_access_key must be set together"},
	}
	for _, tt := range errTests {
		t.Run(tt.in, func(t *testing.T) {
			c, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want error", tt.in, c)
			}
			checkError(t, err, tt.want)
		})
	}
}
