package radius

import "crypto/md5"

// signRequest writes the RFC 2866 Request Authenticator into raw, computed
// independently of layeh so tests can sign arbitrary bytes.
func signRequest(raw, secret []byte) {
	h := md5.New()
	h.Write(raw[:4])
	h.Write(make([]byte, 16))
	h.Write(raw[20:])
	h.Write(secret)
	copy(raw[4:20], h.Sum(nil))
}
