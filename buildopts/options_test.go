package buildopts

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseOutput(t *testing.T) {
	o := Options{Tags: []string{"app:1", "app:latest"}}
	for _, tc := range []struct {
		in, typ, dir, name, push, err string
	}{
		{in: "out", typ: "local", dir: "out"},
		{in: "type=local,dest=d", typ: "local", dir: "d"},
		{in: "-", typ: "tar"},
		{in: "type=tar,dest=x.tar", typ: "tar"},
		{in: "type=oci,dest=x.tar", typ: "oci", name: "app:1,app:latest"},
		{in: "type=docker,dest=-", typ: "docker", name: "app:1,app:latest"},
		{in: "type=image,push=true", typ: "image", name: "app:1,app:latest", push: "true"},
		{in: "type=registry", typ: "image", name: "app:1,app:latest", push: "true"},
		{in: "Type=image,name=other", typ: "image", name: "other"},
		{in: "type=local", err: "dest"},
		{in: "type=tar", err: "dest"},
		{in: "type=zip,dest=x", err: "unknown output type"},
		{in: "dest=x", err: "type is required"},
		{in: `type=local,"dest=x`, err: "quote"},
		{in: "type=local,dest", err: "key=value"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			e, err := o.parseOutput(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.Type != tc.typ || e.OutputDir != tc.dir || e.Attrs["name"] != tc.name || e.Attrs["push"] != tc.push {
				t.Errorf("got type=%s dir=%s attrs=%v", e.Type, e.OutputDir, e.Attrs)
			}
			if _, ok := e.Attrs["dest"]; ok {
				t.Errorf("dest left in exporter attributes")
			}
		})
	}
	if _, err := (Options{}).parseOutput("type=image"); err == nil {
		t.Errorf("type=image without name or -t accepted")
	}
}

func TestParseSecret(t *testing.T) {
	for _, tc := range []struct{ in, id, src, env, err string }{
		{in: "id=a,src=/f", id: "a", src: "/f"},
		{in: "id=a,source=/f,type=file", id: "a", src: "/f"},
		{in: "id=a,env=VAR", id: "a", env: "VAR"},
		{in: "src=/f", err: "id is required"},
		{in: "id=a,foo=b", err: "unknown field"},
		{in: "id=a,type=ssh", err: "type must be"},
		{in: "id", err: "key=value"},
	} {
		src, err := parseSecret(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || src.ID != tc.id || src.FilePath != tc.src || src.Env != tc.env {
			t.Errorf("%s: %+v, %v", tc.in, src, err)
		}
	}
}

func TestS3CredentialsForwardedLikeBuildx(t *testing.T) {
	creds := func(context.Context) (Credentials, error) {
		return Credentials{AccessKeyID: "AKCLIENT", SecretAccessKey: "SKCLIENT", SessionToken: "TOKCLIENT"}, nil
	}
	base := "type=s3,region=r,bucket=b"
	for _, tc := range []struct {
		spec                  string
		key, secret, token    string
		credsErr, wantErrAttr string
		remote                bool
	}{
		{spec: base, remote: true, key: "AKCLIENT", secret: "SKCLIENT", token: "TOKCLIENT"},
		// Embedded, the engine's own chain refreshes temporary credentials;
		// copied into the spec they would expire during a long build.
		{spec: base},
		{spec: base + ",access_key_id=AK,secret_access_key=SK", key: "AK", secret: "SK"},
		{spec: base + ",access_key_id=AK,secret_access_key=SK", remote: true, key: "AK", secret: "SK"},
		{spec: base + ",session_token=T", wantErrAttr: "session_token"},
		{spec: base, remote: true, credsErr: "no credentials"},
		{spec: "type=s3,bucket=b", wantErrAttr: "region"},
		{spec: "type=s3,bucket=b", remote: true, key: "AKCLIENT", secret: "SKCLIENT", token: "TOKCLIENT"},
	} {
		o := Options{AWSCredentials: creds, Remote: tc.remote, LookupEnv: func(string) (string, bool) { return "", false }}
		if tc.credsErr != "" {
			o.AWSCredentials = func(context.Context) (Credentials, error) { return Credentials{}, errors.New(tc.credsErr) }
		}
		entries, err := o.cacheEntries(context.Background(), "--cache-to", []string{tc.spec})
		if tc.wantErrAttr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErrAttr) {
				t.Errorf("%s: err = %v, want one naming %s", tc.spec, err, tc.wantErrAttr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.spec, err)
			continue
		}
		a := entries[0].Attrs
		if a["access_key_id"] != tc.key || a["secret_access_key"] != tc.secret || a["session_token"] != tc.token {
			t.Errorf("%s (remote %v): forwarded %q/%q/%q, want %q/%q/%q", tc.spec, tc.remote, a["access_key_id"], a["secret_access_key"], a["session_token"], tc.key, tc.secret, tc.token)
		}
	}
	// Other cache types pass through untouched.
	entries, err := Options{AWSCredentials: creds}.cacheEntries(context.Background(), "--cache-from", []string{"type=local,src=/c", "user/app:cache"})
	if err != nil || len(entries) != 2 || entries[1].Type != "registry" || entries[0].Attrs["access_key_id"] != "" {
		t.Errorf("non-s3 entries: %+v, %v", entries, err)
	}
}

func TestPrepareRejectsBadInputBeforeRunning(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{}, "PATH"},
		{Options{ContextDir: filepath.Join(dir, "nope")}, "not a directory"},
		{Options{ContextDir: dir, Dockerfile: filepath.Join(dir, "Other")}, "dockerfile"},
		{Options{ContextDir: dir, BuildArgs: []string{"=x"}}, "--build-arg"},
		{Options{ContextDir: dir, Progress: "fancy"}, "--progress"},
		{Options{ContextDir: dir, Secrets: []string{"src=/x"}}, "--secret"},
		{Options{ContextDir: dir, CacheTo: []string{"type=s3,region=r,bucket=b,mode=all"}}, "mode"},
	} {
		_, err := Prepare(context.Background(), tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want %q", tc.o, err, tc.want)
		}
	}
	req, err := Prepare(context.Background(), Options{ContextDir: dir, BuildArgs: []string{"A=1", "FROM_ENV", "MISSING"}, Target: "t", NoCache: true,
		LookupEnv: func(k string) (string, bool) { return "env-" + k, k == "FROM_ENV" }})
	if err != nil {
		t.Fatal(err)
	}
	a := req.solve.FrontendAttrs
	if a["build-arg:A"] != "1" || a["build-arg:FROM_ENV"] != "env-FROM_ENV" || a["target"] != "t" || a["filename"] != "Dockerfile" {
		t.Errorf("frontend attributes: %v", a)
	}
	if _, ok := a["build-arg:MISSING"]; ok {
		t.Errorf("a bare build-arg missing from the environment must be skipped, as docker does")
	}
	if _, ok := a["no-cache"]; !ok {
		t.Errorf("--no-cache not passed to the frontend")
	}
}
