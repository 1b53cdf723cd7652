package spec

import (
	"reflect"
	"strings"
	"testing"

	"github.com/s3cache/s3cache/signature"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"type=s3,region=us-east-1,bucket=my-cache",
		"type=s3,region=eu-west-1,bucket=b,name=app;base,mode=max,ignore-error=true",
		`type=s3,region=auto,bucket=b,endpoint_url=https://acct.r2.cloudflarestorage.com,"name=a;b"`,
		"type=s3,region=us-east-1,bucket=b,endpoint_url=http://minio:9000,use_path_style=true,access_key_id=minio,secret_access_key=minio123",
		"type=s3,region=x,bucket=y,access_key_id=ASIA,secret_access_key=s3cr3t,session_token=t0k3n",
		"type=s3,region=x,bucket=y,prefix=ci/,blobs_prefix=,manifests_prefix=m/,touch_refresh=0s",
		"type=s3,region=x,bucket=y,upload_parallelism=16,retry_mode=adaptive,retry_max_attempts=10,disable_accept_encoding=1",
		"type=s3,region=x,bucket=y,compression=zstd,compression-level=19,force-compression=",
		"Type=s3,Region=x,Bucket=y,upload_paralelism=2,ignore_error=true",
		`type=s3,region=x,bucket=y,"prefix=a,b",name="x,y"`,
		"user/app:cache",
		"region=x,bucket=y",
		"type=s3,region=x,bucket=y,mode=max,signing_key=" + testSigningKey,
		`type=s3,region=x,bucket=y,anonymous=true,"verify_key=` + testPublicKey + ";" + testOtherPublicKey + `"`,
		"type=s3,region=x,bucket=y,anonymous=1,access_key_id=a,secret_access_key=b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse(s)
		if err != nil {
			msg := err.Error()
			if !strings.HasPrefix(msg, "s3 cache: ") || strings.ContainsAny(msg, "\r\n") {
				t.Fatalf("Parse(%q) error %q: want one line starting with %q", s, msg, "s3 cache: ")
			}
			return
		}
		if len(c.Names) == 0 {
			t.Fatalf("Parse(%q): no names", s)
		}
		for _, n := range c.Names {
			if n == "" {
				t.Fatalf("Parse(%q): empty name in %q", s, c.Names)
			}
		}
		if c.UploadParallelism <= 0 || c.TouchRefresh < 0 || c.Region == "" || c.Bucket == "" {
			t.Fatalf("Parse(%q) broke an invariant: %v", s, c)
		}
		if (c.AccessKeyID == "") != (c.SecretAccessKey == "") || (c.SessionToken != "" && c.AccessKeyID == "") {
			t.Fatalf("Parse(%q): unpaired credentials accepted", s)
		}
		back, err := FromAttrs(c.Attrs())
		if err != nil {
			t.Fatalf("FromAttrs(Attrs()) of Parse(%q): %v", s, err)
		}
		want := c
		want.Warnings = nil
		if !reflect.DeepEqual(back, want) {
			t.Fatalf("round trip of Parse(%q)\n got %#v\nwant %#v", s, back, want)
		}

		// A short secret such as "s3" can occur in String() by coincidence,
		// so check that String() does not depend on the secret values at
		// all, and that a secret absent from the other fields stays absent.
		str := c.String()
		other := c
		if other.SecretAccessKey != "" {
			other.SecretAccessKey = "other-secret"
		}
		if other.SessionToken != "" {
			other.SessionToken = "other-token"
		}
		if !other.SigningKey.IsZero() {
			other.SigningKey, _ = signature.ParsePrivateKey("s3cache-ed25519-private:8P534C3MjXhsR-tUIX_uuBrpxvwP_8aQH-8HhD1BpNI")
		}
		if str != other.String() || c.GoString() != other.GoString() {
			t.Fatalf("Parse(%q): rendering depends on the secret values", s)
		}
		if strings.ContainsAny(str, "\r\n") {
			t.Fatalf("Parse(%q): String() spans lines: %s", s, str)
		}
		blank := c
		blank.SecretAccessKey, blank.SessionToken = "", ""
		seed := strings.TrimPrefix(c.SigningKey.Text(), "s3cache-ed25519-private:")
		for _, secret := range []string{c.SecretAccessKey, c.SessionToken, seed} {
			if secret != "" && strings.Contains(str, secret) && !strings.Contains(blank.String(), secret) {
				t.Fatalf("Parse(%q): String() leaks a secret: %s", s, str)
			}
		}
		for _, w := range c.Warnings {
			if strings.ContainsAny(w, "\r\n") {
				t.Fatalf("Parse(%q): warning spans lines: %q", s, w)
			}
		}
	})
}
