package buildopts

import (
	"context"
	"strings"
	"testing"
)

// An anonymous=true import gets no client credentials (they would make it
// invalid, and it wants none); an anonymous export is refused before
// anything runs.
func TestAnonymousSpecs(t *testing.T) {
	creds := func(context.Context) (Credentials, error) {
		return Credentials{AccessKeyID: "AKCLIENT", SecretAccessKey: "SKCLIENT"}, nil
	}
	o := Options{AWSCredentials: creds, Remote: true, LookupEnv: func(string) (string, bool) { return "", false }}
	entries, err := o.cacheEntries(context.Background(), "--cache-from", []string{"type=s3,region=r,bucket=b,anonymous=true"})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"access_key_id", "secret_access_key", "session_token"} {
		if _, ok := entries[0].Attrs[k]; ok {
			t.Errorf("anonymous import got %s", k)
		}
	}
	_, err = o.cacheEntries(context.Background(), "--cache-to", []string{"type=s3,region=r,bucket=b,anonymous=true"})
	if err == nil || !strings.Contains(err.Error(), "--cache-to: s3 cache: anonymous=true is for --cache-from only") {
		t.Fatalf("anonymous export: %v", err)
	}
}
