package radius

import (
	"crypto/md5"
	"crypto/subtle"
)

// authenticRequest reports whether an Accounting-Request's Request
// Authenticator is MD5(Code+Identifier+Length+16 zero octets+Attributes+
// Secret) (RFC 2866 section 3). layeh's IsAuthenticRequest compares with
// bytes.Equal, whose time depends on how many leading octets match: an
// attacker timing answers could learn a valid authenticator octet by
// octet. raw is the packet cut to its Length field.
func authenticRequest(raw, secret []byte) bool {
	if len(raw) < 20 || len(secret) == 0 {
		return false
	}
	h := md5.New()
	h.Write(raw[:4])
	var zero [16]byte
	h.Write(zero[:])
	h.Write(raw[20:])
	h.Write(secret)
	var sum [md5.Size]byte
	return subtle.ConstantTimeCompare(h.Sum(sum[:0]), raw[4:20]) == 1
}
