package manifest

import digest "github.com/opencontainers/go-digest"

// ValidDigest is d.Validate(), answered without go-digest's regular
// expression for the sha256 digests BuildKit writes: a manifest of 10,000
// records has 20,000 digests to check, and the expression was a seventh of
// a merge's CPU. Every other form goes to Validate.
func ValidDigest(d digest.Digest) error {
	const prefix = "sha256:"
	s := string(d)
	if len(s) == len(prefix)+64 && s[:len(prefix)] == prefix {
		ok := true
		for i := len(prefix); i < len(s); i++ {
			if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				ok = false
				break
			}
		}
		if ok {
			return nil
		}
	}
	return d.Validate()
}
