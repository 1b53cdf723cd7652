package inventory

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/s3cache/s3cache/signature"
)

// Signature states of a manifest.
const (
	// SignatureSigned: signed for its name by one of the verify keys.
	SignatureSigned = "signed"
	// SignatureUnverified: it carries a signature, and no verify key was
	// given to check it; Key is the key ID it claims.
	SignatureUnverified = "unverified"
	// SignatureUnsigned: no signature; an import with verify_key skips it.
	SignatureUnsigned = "unsigned"
	// SignatureBad: malformed, not over these bytes and this name, or by a
	// key that is none of the verify keys; an import with verify_key skips
	// it. A manifest someone changed or copied without the key shows so.
	SignatureBad = "bad"
)

// ProblemBadSignature is verify's problem for a manifest whose signature
// the verify keys refuse (given verify_key).
const ProblemBadSignature = "bad-signature"

// Signature is what a manifest's signature metadata says.
type Signature struct {
	State  string `json:"state"`
	Key    string `json:"key,omitempty"`    // key ID: the verifying key, or the one claimed
	Detail string `json:"detail,omitempty"` // why it is bad
}

// String is one line for tables: "signed by key 0123...", "unsigned", ...
func (s Signature) String() string {
	switch s.State {
	case SignatureSigned:
		return "signed by key " + s.Key
	case SignatureUnverified:
		return "signed by key " + s.Key + " (not verified: no verify_key given)"
	case SignatureBad:
		return "bad signature: " + s.Detail
	case "":
		return "-"
	}
	return s.State
}

// checkSignature reads the signature metadata of the manifest dt stored
// under name: verified against keys when there are any.
func checkSignature(name string, dt []byte, meta map[string]string, keys []signature.PublicKey) Signature {
	value := meta[signature.MetadataKey]
	if value == "" {
		return Signature{State: SignatureUnsigned}
	}
	if len(keys) == 0 {
		id, err := signature.Signer(value)
		if err != nil {
			return Signature{State: SignatureBad, Detail: detail(err)}
		}
		return Signature{State: SignatureUnverified, Key: id}
	}
	k, err := signature.Verify(keys, name, dt, value)
	if err != nil {
		return Signature{State: SignatureBad, Detail: detail(err)}
	}
	return Signature{State: SignatureSigned, Key: k.ID()}
}

// detail words a verification error without its sentinel's prefix twice.
func detail(err error) string {
	s := err.Error()
	if errors.Is(err, signature.ErrBadSignature) {
		s = strings.TrimPrefix(strings.TrimPrefix(s, signature.ErrBadSignature.Error()), ": ")
	}
	return oneLine(s)
}

// writeSignatures lists the caches' signatures, when any is signed or
// was checked: a bucket of unsigned caches gets no extra lines.
func (r *VerifyReport) writeSignatures(w io.Writer) error {
	show := false
	for _, s := range r.Signatures {
		show = show || s.Signature.State != SignatureUnsigned
	}
	if !show {
		return nil
	}
	tw := NewTable(w)
	fmt.Fprintln(tw, "CACHE\tSIGNATURE")
	for _, s := range r.Signatures {
		fmt.Fprintf(tw, "%s\t%s\n", Safe(s.Cache), oneLine(s.Signature.String()))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
