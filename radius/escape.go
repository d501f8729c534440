package radius

import (
	"strings"
	"unicode/utf8"
)

// Escape makes a RADIUS string attribute storable in PostgreSQL text
// (valid UTF-8, no NUL) without losing anything: each byte that is not part
// of valid UTF-8, and NUL, becomes \xNN (two lower-case hex digits); a
// backslash becomes \\ only where the next output would start with a
// backslash or an 'x' (so "DOMAIN\user" is kept as it is, and the result
// still reads back unambiguously). Valid strings without "\x" or "\\" are
// returned unchanged, so ordinary values match what FreeRADIUS stores.
// Unescape reverses it.
func Escape(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		c := s[i]
		if c == '\\' {
			b.WriteByte('\\')
			if next := i + 1; next < len(s) && (s[next] == '\\' || s[next] == 'x' || escapedAt(s, next)) {
				b.WriteByte('\\')
			}
			i++
			continue
		}
		if escapedAt(s, i) {
			const hexDigits = "0123456789abcdef"
			b.WriteString(`\x`)
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0xf])
			i++
			continue
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		b.WriteString(s[i : i+size])
		i += size
	}
	return b.String()
}

// escapedAt says whether the byte at i is written as \xNN: NUL, or not the
// start of a valid UTF-8 sequence.
func escapedAt(s string, i int) bool {
	if s[i] == 0 {
		return true
	}
	if s[i] < utf8.RuneSelf {
		return false
	}
	r, size := utf8.DecodeRuneInString(s[i:])
	return r == utf8.RuneError && size == 1
}

func needsEscape(s string) bool {
	return !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 || strings.Contains(s, `\x`) || strings.Contains(s, `\\`)
}

// Unescape returns the raw bytes Escape was given.
func Unescape(s string) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			out = append(out, c)
			continue
		}
		switch {
		case s[i+1] == '\\':
			out = append(out, '\\')
			i++
		case s[i+1] == 'x' && i+3 < len(s) && isHex(s[i+2]) && isHex(s[i+3]):
			out = append(out, unhex(s[i+2])<<4|unhex(s[i+3]))
			i += 3
		default:
			out = append(out, c)
		}
	}
	return out
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
