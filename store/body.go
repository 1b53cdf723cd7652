package store

import (
	"bytes"
	"io"
	"os"
)

// Body is what Put stores: Size bytes read from R, and what the caller
// knows of them that lets the upload do less work. Like restic's Save, which
// takes a reader that knows its length and hash, the facts travel with the
// bytes, not in the context.
type Body struct {
	// R is read at offsets; the parts of a multipart upload are read in
	// parallel.
	R io.ReaderAt
	// Size is the number of bytes stored.
	Size int64
	// Digest, when known, is the bytes' digest ("sha256:<hex>"; other forms
	// are ignored), as a content-addressed blob has. Over plain HTTP the SDK
	// hashes every uploaded byte for the signature, a pass over the data
	// before the first byte is sent (over HTTPS it sends UNSIGNED-PAYLOAD
	// instead). With the digest known, neither is needed:
	//   - an object sent in one PUT is signed with the digest as its payload
	//     hash: the client hashes nothing and the server still checks every
	//     byte against it, refusing a body that does not match;
	//   - a part of a multipart upload is sent UNSIGNED-PAYLOAD, as over
	//     HTTPS, since whoever reads the object checks it against its digest.
	Digest string
	// File, when set, is a file whose bytes [0, Size) are the body (usually
	// R itself): over plain HTTP it is sent with sendfile(2) (see
	// sendfile.go).
	File *os.File
	// Metadata is stored with the object as S3 user metadata
	// (x-amz-meta-<key>), in the same request as the bytes, so the two
	// are written together or not at all; a manifest's signature travels
	// so. Keys are lower-case ASCII, values ASCII, 2 KiB in all at most.
	Metadata map[string]string
}

// BytesBody is a body of b.
func BytesBody(b []byte) Body { return Body{R: bytes.NewReader(b), Size: int64(len(b))} }

// NewBody is a body of size bytes of r.
func NewBody(r io.ReaderAt, size int64) Body { return Body{R: r, Size: size} }

// FileBody is a body of the first size bytes of f, sent with sendfile where
// the connection allows.
func FileBody(f *os.File, size int64) Body { return Body{R: f, Size: size, File: f} }
