package store

import (
	"context"
	"strings"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
)

// unsignedPayload is SigV4's payload hash for a body the signature does
// not cover.
const unsignedPayload = "UNSIGNED-PAYLOAD"

type contentDigestKey struct{}

// WithContentDigest tells Put that the bytes it stores have digest
// ("sha256:<hex>"; other forms are ignored), as a content-addressed blob
// does. Over plain HTTP the SDK hashes every uploaded byte for the
// signature, a pass over the data before the first byte is sent (over
// HTTPS it sends UNSIGNED-PAYLOAD instead). With the digest known, neither
// is needed:
//   - an object sent in one PUT is signed with the digest as its payload
//     hash: the client hashes nothing and the server still checks every
//     byte against it, refusing a body that does not match;
//   - a part of a multipart upload is sent UNSIGNED-PAYLOAD, as over HTTPS,
//     since whoever reads the object checks it against its digest.
func WithContentDigest(ctx context.Context, digest string) context.Context {
	return context.WithValue(ctx, contentDigestKey{}, digest)
}

// payloadHash is the SigV4 payload hash for a PUT of the bytes [off,
// off+n) of an object of size bytes, or "" to let the SDK choose.
func payloadHash(ctx context.Context, off, n, size int64) string {
	digest, _ := ctx.Value(contentDigestKey{}).(string)
	hexDigits, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(hexDigits) != 64 || !isLowerHex(hexDigits) {
		return ""
	}
	if off == 0 && n == size {
		return hexDigits
	}
	return unsignedPayload
}

func isLowerHex(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// withPayloadHash signs a request with hash as its payload hash instead of
// one computed from the body; "" changes nothing.
func withPayloadHash(hash string) []func(*s3.Options) {
	if hash == "" {
		return nil
	}
	return []func(*s3.Options){func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			// Ahead of the SDK's step that hashes the body, which keeps a hash
			// already set.
			return st.Finalize.Insert(middleware.FinalizeMiddlewareFunc("s3cachePayloadHash",
				func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
					return next.HandleFinalize(v4.SetPayloadHash(ctx, hash), in)
				}), "ComputePayloadHash", middleware.Before)
		})
	}}
}
