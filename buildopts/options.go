// Package buildopts turns docker-buildx-style build options into a BuildKit
// solve and runs it on a client: the same code for the embedded engine and
// for a daemon.
package buildopts

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/session/secrets"
	"github.com/moby/buildkit/session/secrets/secretsprovider"
	"github.com/tonistiigi/fsutil"

	"github.com/s3cache/s3cache/spec"
)

// Options are the flags of `s3cache build`, as docker buildx build has them.
type Options struct {
	ContextDir string
	Dockerfile string // -f; <context>/Dockerfile when empty
	Tags       []string
	Target     string
	BuildArgs  []string // KEY=VALUE, or KEY to take the value from the environment
	Platforms  []string
	Outputs    []string // -o, buildx syntax
	CacheTo    []string
	CacheFrom  []string
	NoCache    bool
	Secrets    []string // id=ID,src=PATH | id=ID,env=VAR
	Progress   string   // auto|plain|tty|rawjson|quiet
	// Remote is set when the build runs on a daemon: region and bucket
	// missing here may still come from the daemon's environment.
	Remote bool
	// LookupEnv reads the client's environment (os.LookupEnv when nil).
	LookupEnv func(string) (string, bool)
	// AWSCredentials returns the client's AWS credentials, forwarded to
	// the daemon's `type=s3` specs that name none (the SDK default chain
	// when nil); an embedded build leaves them to the engine's own chain.
	AWSCredentials func(ctx context.Context) (Credentials, error)
	// Stdout receives tar outputs with dest=-.
	Stdout io.Writer
}

// Credentials are AWS credentials forwarded to the engine.
type Credentials struct {
	AccessKeyID, SecretAccessKey, SessionToken string
}

func (o Options) lookupEnv(k string) (string, bool) {
	if o.LookupEnv != nil {
		return o.LookupEnv(k)
	}
	return os.LookupEnv(k)
}

// solveOpt validates every option and builds the solve request; nothing
// runs when an option is invalid.
func (o Options) solveOpt(ctx context.Context) (client.SolveOpt, error) {
	var so client.SolveOpt
	if o.ContextDir == "" {
		return so, fmt.Errorf("build context: a PATH is required")
	}
	ctxDir, err := filepath.Abs(o.ContextDir)
	if err != nil {
		return so, fmt.Errorf("build context %s: %w", o.ContextDir, err)
	}
	if st, err := os.Stat(ctxDir); err != nil || !st.IsDir() {
		return so, fmt.Errorf("build context %s: not a directory", o.ContextDir)
	}
	dockerfile := o.Dockerfile
	if dockerfile == "" {
		dockerfile = filepath.Join(ctxDir, "Dockerfile")
	}
	dockerfile, err = filepath.Abs(dockerfile)
	if err != nil {
		return so, fmt.Errorf("dockerfile %s: %w", o.Dockerfile, err)
	}
	if _, err := os.Stat(dockerfile); err != nil {
		return so, fmt.Errorf("dockerfile: %w", err)
	}
	ctxFS, err := fsutil.NewFS(ctxDir)
	if err != nil {
		return so, fmt.Errorf("build context %s: %w", ctxDir, err)
	}
	dfFS, err := fsutil.NewFS(filepath.Dir(dockerfile))
	if err != nil {
		return so, fmt.Errorf("dockerfile directory: %w", err)
	}
	so.LocalMounts = map[string]fsutil.FS{"context": ctxFS, "dockerfile": dfFS}
	so.Frontend = "dockerfile.v0"
	so.FrontendAttrs = map[string]string{"filename": filepath.Base(dockerfile)}
	if o.Target != "" {
		so.FrontendAttrs["target"] = o.Target
	}
	if len(o.Platforms) > 0 {
		so.FrontendAttrs["platform"] = strings.Join(o.Platforms, ",")
	}
	if o.NoCache {
		so.FrontendAttrs["no-cache"] = ""
	}
	for _, arg := range o.BuildArgs {
		k, v, ok := strings.Cut(arg, "=")
		if k == "" {
			return so, fmt.Errorf("--build-arg %q: expected KEY=VALUE", arg)
		}
		if !ok {
			// As docker: a bare KEY takes its value from the environment, or is skipped.
			if v, ok = o.lookupEnv(k); !ok {
				continue
			}
		}
		so.FrontendAttrs["build-arg:"+k] = v
	}

	if so.Exports, err = o.exports(); err != nil {
		return so, err
	}
	if so.CacheExports, err = o.cacheEntries(ctx, "--cache-to", o.CacheTo); err != nil {
		return so, err
	}
	if so.CacheImports, err = o.cacheEntries(ctx, "--cache-from", o.CacheFrom); err != nil {
		return so, err
	}
	if len(o.Secrets) > 0 {
		store, err := o.secretStore()
		if err != nil {
			return so, err
		}
		so.Session = append(so.Session, secretsprovider.NewSecretProvider(store))
	}
	return so, nil
}

func (o Options) secretStore() (secrets.SecretStore, error) {
	var sources []secretsprovider.Source
	for _, s := range o.Secrets {
		src, err := parseSecret(s)
		if err != nil {
			return nil, err
		}
		sources = append(sources, src)
	}
	st, err := secretsprovider.NewStore(sources)
	if err != nil {
		return nil, fmt.Errorf("--secret: %w", err)
	}
	return st, nil
}

// parseSecret reads buildx's --secret syntax: id=ID[,src=PATH|,env=VAR].
func parseSecret(s string) (secretsprovider.Source, error) {
	var src secretsprovider.Source
	fields, err := csvFields(s)
	if err != nil {
		return src, fmt.Errorf("--secret %q: %w", s, err)
	}
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return src, fmt.Errorf("--secret %q: field %q is not key=value", s, f)
		}
		switch strings.ToLower(k) {
		case "type":
			if v != "file" && v != "env" {
				return src, fmt.Errorf("--secret %q: type must be file or env", s)
			}
		case "id":
			src.ID = v
		case "src", "source":
			src.FilePath = v
		case "env":
			src.Env = v
		default:
			return src, fmt.Errorf("--secret %q: unknown field %q (use id, src or env)", s, k)
		}
	}
	if src.ID == "" {
		return src, fmt.Errorf("--secret %q: id is required", s)
	}
	return src, nil
}

// cacheEntries parses --cache-to/--cache-from values; `type=s3` entries are
// validated here, before anything runs, and get the client's credentials
// when they name none, as buildx does.
func (o Options) cacheEntries(ctx context.Context, flag string, values []string) ([]client.CacheOptionsEntry, error) {
	entries, err := spec.ParseEntries(values)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	out := make([]client.CacheOptionsEntry, 0, len(entries))
	for _, e := range entries {
		if e.Type == "s3" {
			if err := o.prepareS3(ctx, e.Attrs, flag == "--cache-to"); err != nil {
				return nil, fmt.Errorf("%s: %w", flag, err)
			}
		}
		out = append(out, client.CacheOptionsEntry{Type: e.Type, Attrs: e.Attrs})
	}
	return out, nil
}

func (o Options) prepareS3(ctx context.Context, attrs map[string]string, export bool) error {
	check := attrs
	if o.Remote {
		// The daemon may have $AWS_REGION and $AWS_BUCKET; don't refuse what it can fill in.
		check = map[string]string{"region": "-", "bucket": "-"}
		for k, v := range attrs {
			check[k] = v
		}
	}
	cfg, err := spec.FromAttrs(check)
	if err != nil {
		return err
	}
	if export {
		if err := cfg.ForExport(); err != nil {
			return err
		}
	}
	if cfg.Anonymous {
		// Credentials added would make the spec invalid, and are not wanted.
		return nil
	}
	if !o.Remote {
		// The embedded engine shares this process's environment and
		// resolves the same chain itself, refreshing temporary credentials
		// as they expire; keys copied into the spec would expire mid-build.
		return nil
	}
	_, hasKey := attrs["access_key_id"]
	_, hasSecret := attrs["secret_access_key"]
	if hasKey && hasSecret {
		return nil
	}
	// The default chain may probe an instance metadata endpoint that isn't there.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	creds, err := o.credentials(ctx)
	if err != nil || creds.AccessKeyID == "" {
		// No client credentials: the engine uses its own default chain.
		return nil
	}
	if !hasKey {
		attrs["access_key_id"] = creds.AccessKeyID
	}
	if !hasSecret {
		attrs["secret_access_key"] = creds.SecretAccessKey
	}
	if _, ok := attrs["session_token"]; !ok && creds.SessionToken != "" {
		attrs["session_token"] = creds.SessionToken
	}
	return nil
}

func (o Options) credentials(ctx context.Context) (Credentials, error) {
	if o.AWSCredentials != nil {
		return o.AWSCredentials(ctx)
	}
	return DefaultAWSCredentials(ctx)
}
