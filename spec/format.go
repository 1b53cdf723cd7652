package spec

import (
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
)

// String renders every field on one line in attribute terms, secrets
// redacted. It is for humans and logs, not for feeding back to Parse.
func (c Config) String() string {
	var b strings.Builder
	b.WriteString("type=s3")
	add := func(key, v string) {
		b.WriteString(",")
		b.WriteString(key)
		b.WriteString("=")
		b.WriteString(quoteIfNeeded(v))
	}
	secret := func(v string) string {
		if v == "" {
			return ""
		}
		return redactedValue
	}
	level := ""
	if c.CompressionLevel != nil {
		level = strconv.Itoa(*c.CompressionLevel)
	}
	add(attrRegion, c.Region)
	add(attrBucket, c.Bucket)
	add(attrName, strings.Join(c.Names, ";"))
	add(attrEndpointURL, c.EndpointURL)
	add(attrUsePathStyle, strconv.FormatBool(c.UsePathStyle))
	add(attrPrefix, c.Prefix)
	add(attrBlobsPrefix, c.BlobsPrefix)
	add(attrManifestsPrefix, c.ManifestsPrefix)
	add(attrUploadParallelism, strconv.Itoa(c.UploadParallelism))
	add(attrTouchRefresh, c.TouchRefresh.String())
	add(attrAccessKeyID, c.AccessKeyID)
	add(attrSecretAccessKey, secret(c.SecretAccessKey))
	add(attrSessionToken, secret(c.SessionToken))
	add(attrRetryMode, c.RetryMode)
	add(attrRetryMaxAttempts, strconv.Itoa(c.RetryMaxAttempts))
	add(attrDisableAcceptEncoding, strconv.FormatBool(c.DisableAcceptEncoding))
	add(attrMode, c.Mode)
	add(attrIgnoreError, strconv.FormatBool(c.IgnoreError))
	add(attrMerge, strconv.FormatBool(c.Merge))
	add(attrMergeKeep, c.MergeKeep.String())
	add(attrSigningKey, secret(c.SigningKey.Text()))
	add(attrVerifyKey, c.verifyKeysText())
	add(attrAnonymous, strconv.FormatBool(c.Anonymous))
	add(attrCompression, c.Compression)
	add(attrCompressionLevel, level)
	add(attrForceCompression, strconv.FormatBool(c.ForceCompression))
	return b.String()
}

// quoteIfNeeded Go-quotes values that would otherwise be ambiguous (commas,
// quotes) or break the single line (control characters, invalid UTF-8).
func quoteIfNeeded(v string) string {
	q := strconv.Quote(v)
	if q[1:len(q)-1] != v || strings.Contains(v, ",") {
		return q
	}
	return v
}

// GoString is the %#v rendering: Go syntax with the secrets redacted.
func (c Config) GoString() string {
	redact := func(v string) string {
		if v == "" {
			return ""
		}
		return redactedValue
	}
	level := "(*int)(nil)"
	if c.CompressionLevel != nil {
		level = fmt.Sprintf("new(%d)", *c.CompressionLevel)
	}
	return fmt.Sprintf("spec.Config{Region:%q, Bucket:%q, Names:%#v, EndpointURL:%q, UsePathStyle:%t, "+
		"Prefix:%q, BlobsPrefix:%q, ManifestsPrefix:%q, UploadParallelism:%d, TouchRefresh:%d, "+
		"AccessKeyID:%q, SecretAccessKey:%q, SessionToken:%q, RetryMode:%q, RetryMaxAttempts:%d, "+
		"DisableAcceptEncoding:%t, Mode:%q, IgnoreError:%t, Merge:%t, MergeKeep:%d, SigningKey:%q, VerifyKeys:%q, Anonymous:%t, "+
		"Compression:%q, CompressionLevel:%s, "+
		"ForceCompression:%t, Warnings:%#v}",
		c.Region, c.Bucket, c.Names, c.EndpointURL, c.UsePathStyle,
		c.Prefix, c.BlobsPrefix, c.ManifestsPrefix, c.UploadParallelism, int64(c.TouchRefresh),
		c.AccessKeyID, redact(c.SecretAccessKey), redact(c.SessionToken), c.RetryMode, c.RetryMaxAttempts,
		c.DisableAcceptEncoding, c.Mode, c.IgnoreError, c.Merge, int64(c.MergeKeep), redact(c.SigningKey.Text()), c.verifyKeysText(), c.Anonymous,
		c.Compression, level,
		c.ForceCompression, c.Warnings)
}

// Format makes every fmt verb go through String or GoString; without it
// %+v would print the struct fields, secrets included. A *Config gets it
// too, and fmt prints "<nil>" for a nil *Config.
func (c Config) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		_, _ = io.WriteString(f, c.GoString())
	case verb == 'q':
		_, _ = io.WriteString(f, strconv.Quote(c.String()))
	default:
		_, _ = io.WriteString(f, c.String())
	}
}

// LogValue keeps slog handlers (JSON included, which would otherwise
// marshal the fields) on the redacted rendering.
func (c Config) LogValue() slog.Value {
	return slog.StringValue(c.String())
}
