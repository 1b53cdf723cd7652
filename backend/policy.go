package backend

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"slices"
	"strings"

	"github.com/s3cache/s3cache/spec"
)

// AWSEndpoint is the Policy.AllowEndpoints entry that allows specs without
// endpoint_url, i.e. AWS's own S3 endpoints.
const AWSEndpoint = "aws"

// Policy limits what the `type=s3` specs of a daemon's clients may reach.
// Its zero value allows everything, as upstream BuildKit does: any client
// may name any endpoint and bucket, and a spec without static credentials
// is signed with the daemon's own identity (its default credential chain).
type Policy struct {
	// AllowEndpoints, when not empty, are the endpoints a spec may name:
	// URLs compared by scheme, host and port, or AWSEndpoint for a spec
	// without endpoint_url.
	AllowEndpoints []string
	// AllowBuckets, when not empty, are the buckets a spec may name:
	// names, or patterns of path.Match such as "ci-*".
	AllowBuckets []string
	// RequireCredentials refuses specs without access_key_id and
	// secret_access_key, so that the daemon never lends a client its own
	// AWS identity.
	RequireCredentials bool
}

// Validate checks the policy's entries, naming the flag that set a bad one.
func (p Policy) Validate() error {
	for _, e := range p.AllowEndpoints {
		if e == AWSEndpoint {
			continue
		}
		if _, err := endpointKey(e); err != nil {
			shown := e
			if u, perr := url.Parse(e); perr == nil && u.User != nil {
				shown = u.Redacted() // a password is never echoed
			}
			return fmt.Errorf("--s3-allow-endpoint %q: %w", shown, err)
		}
	}
	for _, b := range p.AllowBuckets {
		if b == "" {
			return errors.New("--s3-allow-bucket: empty bucket name")
		}
		if _, err := path.Match(b, ""); err != nil {
			return fmt.Errorf("--s3-allow-bucket %q: %w", b, err)
		}
	}
	return nil
}

// Check refuses a spec the policy does not allow, with a one-line error
// naming the attribute.
func (p Policy) Check(cfg spec.Config) error {
	if len(p.AllowEndpoints) > 0 && !p.endpointAllowed(cfg.EndpointURL) {
		if cfg.EndpointURL == "" {
			return errors.New("s3 cache: endpoint_url is required by this daemon: AWS's own endpoints are not in its --s3-allow-endpoint list")
		}
		return fmt.Errorf("s3 cache: endpoint_url %q is not allowed by this daemon (--s3-allow-endpoint)", cfg.EndpointURL)
	}
	if len(p.AllowBuckets) > 0 && !slices.ContainsFunc(p.AllowBuckets, func(pat string) bool {
		ok, _ := path.Match(pat, cfg.Bucket) // Validate refused bad patterns
		return ok
	}) {
		return fmt.Errorf("s3 cache: bucket %q is not allowed by this daemon (--s3-allow-bucket)", cfg.Bucket)
	}
	// An anonymous spec lends nothing: its requests go unsigned.
	if p.RequireCredentials && !cfg.HasCredentials() && !cfg.Anonymous {
		return errors.New("s3 cache: access_key_id and secret_access_key are required by this daemon, which does not lend clients its own AWS credentials (--s3-require-credentials)")
	}
	return nil
}

func (p Policy) endpointAllowed(endpoint string) bool {
	if endpoint == "" {
		return slices.Contains(p.AllowEndpoints, AWSEndpoint)
	}
	key, err := endpointKey(endpoint)
	if err != nil {
		return false
	}
	for _, e := range p.AllowEndpoints {
		if k, err := endpointKey(e); err == nil && k == key {
			return true
		}
	}
	return false
}

// endpointKey is scheme://host:port, lower-cased, with the scheme's
// default port made explicit: what decides where requests go.
func endpointKey(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", errors.New("not a URL")
	}
	scheme := strings.ToLower(u.Scheme)
	if (scheme != "http" && scheme != "https") || u.Hostname() == "" {
		return "", errors.New("want an http:// or https:// URL with a host")
	}
	if u.User != nil {
		return "", errors.New("must not contain user info")
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[scheme]
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	return scheme + "://" + net.JoinHostPort(host, port), nil
}
