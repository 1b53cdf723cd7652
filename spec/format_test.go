package spec

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/s3cache/s3cache/signature"
)

func secretConfig() Config {
	c := defaults()
	c.AccessKeyID = "AKIAEXAMPLE"
	c.SecretAccessKey = testSecret
	c.SessionToken = testToken
	c.CompressionLevel = intPtr(3)
	c.SigningKey, _ = signature.ParsePrivateKey(testSigningKey)
	return c
}

func TestString(t *testing.T) {
	tests := []struct {
		name string
		c    func(*Config)
		want string
	}{
		{"defaults", func(*Config) {},
			"type=s3,region=us-east-1,bucket=my-bucket,name=buildkit,endpoint_url=,use_path_style=false," +
				"prefix=,blobs_prefix=blobs/,manifests_prefix=manifests/,upload_parallelism=4,touch_refresh=24h0m0s," +
				"access_key_id=,secret_access_key=,session_token=,retry_mode=,retry_max_attempts=0," +
				"disable_accept_encoding=false,mode=,ignore-error=false,merge=false,merge_keep=168h0m0s,signing_key=,verify_key=,anonymous=false," +
				"compression=,compression-level=,force-compression=false"},
		{"everything set", func(c *Config) {
			*c = secretConfig()
			c.Names = []string{"a", "b"}
			c.EndpointURL = "https://s3.example"
			c.UsePathStyle, c.DisableAcceptEncoding, c.IgnoreError, c.ForceCompression = true, true, true, true
			c.Prefix, c.BlobsPrefix, c.ManifestsPrefix = "p/", "", "m/"
			c.UploadParallelism, c.TouchRefresh = 2, 0
			c.Merge, c.MergeKeep = true, 72*time.Hour
			c.VerifyKeys = []signature.PublicKey{mustPublicKey(t, testPublicKey)}
			c.RetryMode, c.RetryMaxAttempts, c.Mode, c.Compression = "standard", 3, "max", "zstd"
		},
			"type=s3,region=us-east-1,bucket=my-bucket,name=a;b,endpoint_url=https://s3.example,use_path_style=true," +
				"prefix=p/,blobs_prefix=,manifests_prefix=m/,upload_parallelism=2,touch_refresh=0s," +
				"access_key_id=AKIAEXAMPLE,secret_access_key=<redacted>,session_token=<redacted>,retry_mode=standard,retry_max_attempts=3," +
				"disable_accept_encoding=true,mode=max,ignore-error=true,merge=true,merge_keep=72h0m0s,signing_key=<redacted>,verify_key=" + testPublicKey + ",anonymous=false," +
				"compression=zstd,compression-level=3,force-compression=true"},
		{"awkward values quoted", func(c *Config) { c.Prefix = "a,b"; c.Bucket = "x\ny" },
			`type=s3,region=us-east-1,bucket="x\ny",name=buildkit,endpoint_url=,use_path_style=false,` +
				`prefix="a,b",blobs_prefix=blobs/,manifests_prefix=manifests/,upload_parallelism=4,touch_refresh=24h0m0s,` +
				`access_key_id=,secret_access_key=,session_token=,retry_mode=,retry_max_attempts=0,` +
				`disable_accept_encoding=false,mode=,ignore-error=false,merge=false,merge_keep=168h0m0s,signing_key=,verify_key=,anonymous=false,` +
				`compression=,compression-level=,force-compression=false`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := defaults()
			tt.c(&c)
			if got := c.String(); got != tt.want {
				t.Errorf("String()\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestGoString(t *testing.T) {
	got := secretConfig().GoString()
	for _, want := range []string{`spec.Config{Region:"us-east-1"`, `SecretAccessKey:"<redacted>"`, `SessionToken:"<redacted>"`,
		`AccessKeyID:"AKIAEXAMPLE"`, `CompressionLevel:new(3)`, `Names:[]string{"buildkit"}`} {
		if !strings.Contains(got, want) {
			t.Errorf("GoString() = %s, want it to contain %s", got, want)
		}
	}
	if got := defaults().GoString(); !strings.Contains(got, `CompressionLevel:(*int)(nil)`) || !strings.Contains(got, `SecretAccessKey:""`) {
		t.Errorf("GoString() of defaults = %s", got)
	}
}

// TestRedaction prints a config with planted secrets every way a caller
// plausibly would.
func TestRedaction(t *testing.T) {
	c := secretConfig()
	p := &c
	type wrapper struct {
		Cfg Config
		Ptr *Config
	}
	renderings := map[string]string{
		"String":        c.String(),
		"GoString":      c.GoString(),
		"%v":            fmt.Sprintf("%v", c),
		"%+v":           fmt.Sprintf("%+v", c),
		"%#v":           fmt.Sprintf("%#v", c),
		"%s":            fmt.Sprintf("%s", c),
		"%q":            fmt.Sprintf("%q", c),
		"%x":            fmt.Sprintf("%x", c),
		"%d":            fmt.Sprintf("%d", c),
		"ptr %v":        fmt.Sprintf("%v", p),
		"ptr %+v":       fmt.Sprintf("%+v", p),
		"ptr %#v":       fmt.Sprintf("%#v", p),
		"ptr %s":        fmt.Sprintf("%s", p),
		"Sprint":        fmt.Sprint(c, p),
		"Sprintln":      fmt.Sprintln(c, p),
		"slice %+v":     fmt.Sprintf("%+v", []Config{c}),
		"slice %#v":     fmt.Sprintf("%#v", []*Config{p}),
		"map %v":        fmt.Sprintf("%v", map[string]Config{"k": c}),
		"struct %+v":    fmt.Sprintf("%+v", wrapper{c, p}),
		"struct %#v":    fmt.Sprintf("%#v", wrapper{c, p}),
		"struct ptr %v": fmt.Sprintf("%v", &wrapper{c, p}),
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("cfg", "config", c, "ptr", p)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("cfg", "config", c, "ptr", p)
	renderings["slog"] = buf.String()
	for name, s := range renderings {
		if strings.Contains(s, testSecret) || strings.Contains(s, testToken) || strings.Contains(s, testSigningKeySeed) {
			t.Errorf("%s leaks a secret: %s", name, s)
		}
		if !strings.Contains(s, "redacted") {
			t.Errorf("%s does not go through the redacted rendering: %s", name, s)
		}
	}
	if got := fmt.Sprintf("%v", (*Config)(nil)); got != "<nil>" {
		t.Errorf("nil *Config prints %q, want <nil>", got)
	}
}

// TestRedactionInErrors plants secrets in specs that fail or warn for
// every reason that involves the credential attributes.
func TestRedactionInErrors(t *testing.T) {
	clearEnv(t)
	creds := "access_key_id=AKIA,secret_access_key=" + testSecret + ",session_token=" + testToken
	specs := []string{
		"region=x,bucket=y," + creds,                                // type missing
		"type=registry," + creds,                                    // wrong type
		"type=s3,bucket=y," + creds,                                 // region missing
		"type=s3,region=x,bucket=y,secret_access_key=" + testSecret, // unpaired
		"type=s3,region=x,bucket=y,session_token=" + testToken,      // token alone
		"type=s3,region=x,bucket=y,access_key_id=AKIA,session_token=" + testToken,
		"type=s3,region=x,bucket=y,endpoint_url=https://AKIA:" + testSecret + "@h," + creds,
		"type=s3,region=x,bucket=y,upload_parallelism=0," + creds,
		"type=s3,region=x,bucket=y,Secret_Acess_Key=" + testSecret, // warning only
		"type=s3,region=x,bucket=y,secret_access_key_=" + testSecret + ",session-token=" + testToken,
		"type=s3,region=x,bucket=y," + creds + ",bogus",
		"type=s3,region=x,bucket=y,signing_key=" + testSigningKey + ",mode=bogus",
		"type=s3,region=x,bucket=y,signing_key=" + testSigningKey + "x", // malformed
		"type=s3,region=x,bucket=y,signing_key=" + testSigningKeySeed,   // no prefix
		"type=s3,region=x,bucket=y,verify_key=" + testSigningKey,        // private key as public
		"type=s3,region=x,bucket=y,signing_key=" + testSigningKey + ",anonymous=1," + creds,
		"type=s3,region=x,bucket=y,signing_ky=" + testSigningKey, // warning only
	}
	for _, s := range specs {
		c, err := Parse(s)
		var out []string
		if err != nil {
			checkError(t, err)
			out = append(out, err.Error())
		} else {
			out = append(append(out, c.Warnings...), c.String(), fmt.Sprintf("%+v", c))
		}
		for _, o := range out {
			if strings.Contains(o, testSecret) || strings.Contains(o, testToken) || strings.Contains(o, testSigningKeySeed) {
				t.Errorf("Parse(%q) output leaks a secret: %s", s, o)
			}
		}
	}
}
