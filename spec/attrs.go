package spec

import (
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/s3cache/s3cache/signature"
)

// Attribute names, as BuildKit's s3 cache backend and its compression
// options spell them (note the dashes in the last four).
const (
	attrRegion                = "region"
	attrBucket                = "bucket"
	attrName                  = "name"
	attrEndpointURL           = "endpoint_url"
	attrUsePathStyle          = "use_path_style"
	attrPrefix                = "prefix"
	attrBlobsPrefix           = "blobs_prefix"
	attrManifestsPrefix       = "manifests_prefix"
	attrUploadParallelism     = "upload_parallelism"
	attrTouchRefresh          = "touch_refresh"
	attrAccessKeyID           = "access_key_id"
	attrSecretAccessKey       = "secret_access_key"
	attrSessionToken          = "session_token"
	attrRetryMode             = "retry_mode"
	attrRetryMaxAttempts      = "retry_max_attempts"
	attrDisableAcceptEncoding = "disable_accept_encoding"
	attrMode                  = "mode"
	attrIgnoreError           = "ignore-error"
	attrMerge                 = "merge"
	attrMergeKeep             = "merge_keep"
	attrSigningKey            = "signing_key"
	attrVerifyKey             = "verify_key"
	attrAnonymous             = "anonymous"
	attrCompression           = "compression"
	attrCompressionLevel      = "compression-level"
	attrForceCompression      = "force-compression"
)

// knownAttrs is the fixed validation order, so the first error reported for
// a given spec never depends on map iteration.
var knownAttrs = []string{
	attrRegion, attrBucket, attrName, attrEndpointURL, attrUsePathStyle,
	attrPrefix, attrBlobsPrefix, attrManifestsPrefix, attrUploadParallelism,
	attrTouchRefresh, attrAccessKeyID, attrSecretAccessKey, attrSessionToken, attrAnonymous,
	attrRetryMode, attrRetryMaxAttempts, attrDisableAcceptEncoding, attrMode,
	attrIgnoreError, attrMerge, attrMergeKeep, attrSigningKey, attrVerifyKey,
	attrCompression, attrCompressionLevel, attrForceCompression,
}

const (
	errPrefix     = "s3 cache: "
	redactedValue = "<redacted>"
)

// SecretAttrs are the attributes whose values are secrets: never printed,
// never stored by BuildKit.
var SecretAttrs = []string{attrSecretAccessKey, attrSessionToken, attrSigningKey}

func isSecret(key string) bool { return slices.Contains(SecretAttrs, key) }

func errorf(format string, args ...any) error {
	return fmt.Errorf(errPrefix+format, args...)
}

// FromAttrs validates the attributes of a type=s3 cache entry (lower-case
// keys, without "type") into a Config. It returns the first error in a fixed
// attribute order; unknown attributes only add to Config.Warnings, since
// BuildKit itself ignores them.
func FromAttrs(attrs map[string]string) (Config, error) {
	c := Config{
		Names:             []string{DefaultName},
		BlobsPrefix:       DefaultBlobsPrefix,
		ManifestsPrefix:   DefaultManifestsPrefix,
		UploadParallelism: DefaultUploadParallelism,
		TouchRefresh:      DefaultTouchRefresh,
		MergeKeep:         DefaultMergeKeep,
	}
	var err error
	if c.Region, err = required(attrs, attrRegion, "AWS_REGION", "a region such as us-east-1"); err != nil {
		return Config{}, err
	}
	if c.Bucket, err = required(attrs, attrBucket, "AWS_BUCKET", "a bucket name"); err != nil {
		return Config{}, err
	}
	if v, ok := attrs[attrName]; ok {
		names := strings.Split(v, ";")
		// Upstream would accept "" and "a;;b" and then store manifests under
		// an empty name, which no later import can address on purpose.
		if slices.Contains(names, "") {
			return Config{}, errorf(`%s must be one or more non-empty cache names separated by ";", got %q`, attrName, v)
		}
		// A key ending in "/" is what consoles use as a folder marker, so
		// listings may take such a manifest for one and prune would then
		// delete the blobs it names.
		for _, n := range names {
			if strings.HasSuffix(n, "/") {
				return Config{}, errorf(`%s must not end in "/" (it would look like a folder), got %q`, attrName, n)
			}
		}
		c.Names = names
	}
	if v, ok := attrs[attrEndpointURL]; ok && v != "" {
		if err := checkEndpoint(v); err != nil {
			return Config{}, err
		}
		c.EndpointURL = v
	}
	if c.UsePathStyle, err = boolAttr(attrs, attrUsePathStyle, false); err != nil {
		return Config{}, err
	}
	// Prefixes are verbatim: upstream applies a default only to an absent key.
	c.Prefix = attrs[attrPrefix]
	if v, ok := attrs[attrBlobsPrefix]; ok {
		c.BlobsPrefix = v
	}
	if v, ok := attrs[attrManifestsPrefix]; ok {
		c.ManifestsPrefix = v
	}
	if v, ok := attrs[attrUploadParallelism]; ok {
		if c.UploadParallelism, err = positiveInt(attrUploadParallelism, v); err != nil {
			return Config{}, err
		}
	}
	if v, ok := attrs[attrTouchRefresh]; ok {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return Config{}, errorf("%s must be a non-negative duration such as 24h, 90m or 0s, got %q", attrTouchRefresh, v)
		}
		c.TouchRefresh = d
	}
	if err := c.setCredentials(attrs); err != nil {
		return Config{}, err
	}
	if c.Anonymous, err = boolAttr(attrs, attrAnonymous, false); err != nil {
		return Config{}, err
	}
	if c.Anonymous {
		for _, k := range []string{attrAccessKeyID, attrSecretAccessKey, attrSessionToken} {
			if _, ok := attrs[k]; ok {
				return Config{}, errorf("%s=true sends requests unsigned, without credentials; remove %s or %s", attrAnonymous, k, attrAnonymous)
			}
		}
	}
	if c.RetryMode, err = enumAttr(attrs, attrRetryMode, "standard", "adaptive"); err != nil {
		return Config{}, err
	}
	if v, ok := attrs[attrRetryMaxAttempts]; ok {
		if c.RetryMaxAttempts, err = positiveInt(attrRetryMaxAttempts, v); err != nil {
			return Config{}, err
		}
	}
	if c.DisableAcceptEncoding, err = boolAttr(attrs, attrDisableAcceptEncoding, false); err != nil {
		return Config{}, err
	}
	if c.Mode, err = enumAttr(attrs, attrMode, "min", "max"); err != nil {
		return Config{}, err
	}
	if c.IgnoreError, err = boolAttr(attrs, attrIgnoreError, false); err != nil {
		return Config{}, err
	}
	if c.Merge, err = boolAttr(attrs, attrMerge, false); err != nil {
		return Config{}, err
	}
	if v, ok := attrs[attrMergeKeep]; ok {
		// Zero would drop every other writer's results, which is what
		// merge=false does more cheaply.
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return Config{}, errorf("%s must be a positive duration such as 168h or 72h, got %q", attrMergeKeep, v)
		}
		c.MergeKeep = d
	}
	if v, ok := attrs[attrSigningKey]; ok {
		// The parser's errors never hold the key.
		if c.SigningKey, err = signature.ParsePrivateKey(v); err != nil {
			return Config{}, errorf("%s: %v", attrSigningKey, err)
		}
	}
	if v, ok := attrs[attrVerifyKey]; ok {
		if c.VerifyKeys, err = signature.ParsePublicKeys(v); err != nil {
			return Config{}, errorf(`%s must be one or more public keys (.pub files, as s3cache keygen writes) separated by ";": %v`, attrVerifyKey, err)
		}
	}
	if c.Compression, err = enumAttr(attrs, attrCompression, "uncompressed", "gzip", "estargz", "zstd"); err != nil {
		return Config{}, err
	}
	if v, ok := attrs[attrCompressionLevel]; ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return Config{}, errorf("%s must be an integer, got %q", attrCompressionLevel, v)
		}
		c.CompressionLevel = &n
	}
	// BuildKit treats a bare force-compression= as true.
	if c.ForceCompression, err = boolAttr(attrs, attrForceCompression, true); err != nil {
		return Config{}, err
	}
	c.Warnings = unknownAttrWarnings(attrs)
	return c, nil
}

// required reads an attribute that falls back to an environment variable
// only when the key is absent, as upstream does; an explicit empty value is
// a mistake rather than a request for the fallback.
func required(attrs map[string]string, key, env, accepts string) (string, error) {
	v, ok := attrs[key]
	if !ok {
		if v = os.Getenv(env); v == "" {
			return "", errorf("%s is required: set %s=... or $%s", key, key, env)
		}
		return v, nil
	}
	if v == "" {
		return "", errorf("%s must be %s, got %q", key, accepts, v)
	}
	return v, nil
}

func checkEndpoint(v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errorf("%s must be an http:// or https:// URL, got %q", attrEndpointURL, redactUserinfo(v))
	}
	// Credentials in the URL would bypass redaction and the SDK ignores them.
	if u.User != nil {
		return errorf("%s must not contain user info; use %s and %s, got %q", attrEndpointURL, attrAccessKeyID, attrSecretAccessKey, redactUserinfo(v))
	}
	return nil
}

// redactUserinfo hides everything between the scheme and the last "@" of a
// URL that may not even parse: a secret key containing "/" breaks the
// authority, so url.URL.Redacted cannot be relied on. Over-redacting a path
// that contains "@" is the lesser evil in an error message.
func redactUserinfo(v string) string {
	at := strings.LastIndex(v, "@")
	if at < 0 {
		return v
	}
	start := strings.Index(v, "://")
	if start < 0 || start > at {
		start = 0
	} else {
		start += len("://")
	}
	return v[:start] + "xxxxx" + v[at:]
}

func boolAttr(attrs map[string]string, key string, emptyIsTrue bool) (bool, error) {
	v, ok := attrs[key]
	if !ok {
		return false, nil
	}
	if v == "" && emptyIsTrue {
		return true, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errorf("%s must be a boolean (true or false), got %q", key, v)
	}
	return b, nil
}

func positiveInt(key, v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, errorf("%s must be a positive integer, got %q", key, v)
	}
	return n, nil
}

// enumAttr returns "" for an absent key so the consumer keeps its default.
func enumAttr(attrs map[string]string, key string, allowed ...string) (string, error) {
	v, ok := attrs[key]
	if !ok || slices.Contains(allowed, v) {
		return v, nil
	}
	return "", errorf("%s must be one of %s, got %q", key, strings.Join(allowed, ", "), v)
}

// setCredentials never echoes values: two of the three are secrets.
func (c *Config) setCredentials(attrs map[string]string) error {
	c.AccessKeyID = attrs[attrAccessKeyID]
	c.SecretAccessKey = attrs[attrSecretAccessKey]
	c.SessionToken = attrs[attrSessionToken]
	if (c.AccessKeyID == "") != (c.SecretAccessKey == "") {
		return errorf("%s and %s must be set together", attrAccessKeyID, attrSecretAccessKey)
	}
	if c.SessionToken != "" && c.AccessKeyID == "" {
		return errorf("%s requires %s and %s", attrSessionToken, attrAccessKeyID, attrSecretAccessKey)
	}
	return nil
}

// Attrs renders c back into attributes, secrets included (it forwards
// credentials to the daemon), such that FromAttrs(c.Attrs()) reproduces c.
// Attributes at their default are omitted except region, bucket and name.
func (c Config) Attrs() map[string]string {
	m := map[string]string{
		attrRegion: c.Region,
		attrBucket: c.Bucket,
		attrName:   strings.Join(c.Names, ";"),
	}
	setIf := func(key, v string, ok bool) {
		if ok {
			m[key] = v
		}
	}
	setIf(attrEndpointURL, c.EndpointURL, c.EndpointURL != "")
	setIf(attrUsePathStyle, "true", c.UsePathStyle)
	setIf(attrPrefix, c.Prefix, c.Prefix != "")
	setIf(attrBlobsPrefix, c.BlobsPrefix, c.BlobsPrefix != DefaultBlobsPrefix)
	setIf(attrManifestsPrefix, c.ManifestsPrefix, c.ManifestsPrefix != DefaultManifestsPrefix)
	setIf(attrUploadParallelism, strconv.Itoa(c.UploadParallelism), c.UploadParallelism != DefaultUploadParallelism)
	setIf(attrTouchRefresh, c.TouchRefresh.String(), c.TouchRefresh != DefaultTouchRefresh)
	setIf(attrAccessKeyID, c.AccessKeyID, c.AccessKeyID != "")
	setIf(attrSecretAccessKey, c.SecretAccessKey, c.SecretAccessKey != "")
	setIf(attrSessionToken, c.SessionToken, c.SessionToken != "")
	setIf(attrRetryMode, c.RetryMode, c.RetryMode != "")
	setIf(attrRetryMaxAttempts, strconv.Itoa(c.RetryMaxAttempts), c.RetryMaxAttempts != 0)
	setIf(attrDisableAcceptEncoding, "true", c.DisableAcceptEncoding)
	setIf(attrMode, c.Mode, c.Mode != "")
	setIf(attrIgnoreError, "true", c.IgnoreError)
	setIf(attrMerge, "true", c.Merge)
	setIf(attrMergeKeep, c.MergeKeep.String(), c.MergeKeep != DefaultMergeKeep)
	setIf(attrSigningKey, c.SigningKey.Text(), !c.SigningKey.IsZero())
	setIf(attrVerifyKey, c.verifyKeysText(), len(c.VerifyKeys) > 0)
	setIf(attrAnonymous, "true", c.Anonymous)
	setIf(attrCompression, c.Compression, c.Compression != "")
	if c.CompressionLevel != nil {
		m[attrCompressionLevel] = strconv.Itoa(*c.CompressionLevel)
	}
	setIf(attrForceCompression, "true", c.ForceCompression)
	return m
}

// ForExport refuses what only a cache import may set: an export must
// write, and anonymous requests cannot.
func (c Config) ForExport() error {
	if c.Anonymous {
		return errorf("%s=true is for --cache-from only: an export writes, which anonymous requests cannot", attrAnonymous)
	}
	return nil
}

func (c Config) verifyKeysText() string {
	texts := make([]string, len(c.VerifyKeys))
	for i, k := range c.VerifyKeys {
		texts[i] = k.Text()
	}
	return strings.Join(texts, ";")
}

// HasCredentials reports whether the spec carries static credentials; if
// not, the AWS SDK default credential chain applies.
func (c Config) HasCredentials() bool {
	return c.AccessKeyID != ""
}
