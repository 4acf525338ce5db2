package config

import (
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
)

// Secret holds a value that must never be printed, such as a DSN with a
// password. Every printed form hides the password: fmt with any verb
// (%v, %s, %+v, %#v, %q...), slog (it is a slog.LogValuer), encoding/json and
// other TextMarshaler users. Only Value returns the raw string.
type Secret string

// redacted replaces a password in Redact's output.
const redacted = "xxxxx"

// Value returns the raw value, for database drivers. Never log it.
func (s Secret) Value() string { return string(s) }

// String returns Redact of the value.
func (s Secret) String() string { return Redact(string(s)) }

// GoString returns config.Secret("<redacted value>"), for %#v.
func (s Secret) GoString() string { return "config.Secret(" + strconv.Quote(s.String()) + ")" }

// Format prints the redacted value with any verb, so that no fmt verb (not
// even a wrong one such as %d) reaches the raw string.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, s.GoString())
		return
	}
	_, _ = fmt.Fprintf(f, fmt.FormatString(f, verb), s.String())
}

// MarshalText returns the redacted value, so that JSON, YAML and other text
// encodings never contain the password.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// LogValue returns the redacted value, for log/slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Redact returns dsn with its password replaced by "xxxxx":
//
//   - URL DSNs (postgres://u:pass@h/db, mysql://u:pass@h:3306/db): the password
//     of the user info, and the value of any password-like query parameter
//     (?password=, &sslpassword=...);
//   - key=value DSNs (host=h user=u password='p w'): the value of every
//     password-like key;
//   - Go MySQL driver DSNs (u:pass@tcp(h:3306)/db?...): like URL DSNs.
//
// Anything else that contains '@' or a password-like word is returned as
// "[redacted]" whole; other strings are returned unchanged. Redact never
// panics. Over-redaction is preferred to a leak: an '@' in a URL's query
// hides the host too.
func Redact(dsn string) string {
	if dsn == "" {
		return ""
	}
	if i := schemeLen(dsn); i > 0 {
		return redactUserinfo(dsn[:i], dsn[i:])
	}
	if out, ok := redactKeyValue(dsn); ok {
		return out
	}
	if at := strings.LastIndexByte(dsn, '@'); at >= 0 && isMySQLDriverAddr(dsn[at+1:]) {
		return redactUserinfo("", dsn)
	}
	if strings.Contains(dsn, "@") || hasPasswordWord(dsn) {
		return "[redacted]"
	}
	return dsn
}

// schemeLen returns the length of a leading "scheme://", or 0.
func schemeLen(s string) int {
	i := strings.Index(s, "://")
	if i <= 0 {
		return 0
	}
	for j := 0; j < i; j++ {
		c := s[j]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case j > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return 0
		}
	}
	return i + 3
}

// redactUserinfo redacts "user:pass@" at the start of rest (the part after
// head, the scheme) and the password-like parameters after it. The last '@'
// ends the user info, so a password containing '@', '/', '?' or '#' is
// hidden whole.
func redactUserinfo(head, rest string) string {
	var b strings.Builder
	b.WriteString(head)
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		userinfo := rest[:at]
		if c := strings.IndexByte(userinfo, ':'); c >= 0 {
			b.WriteString(userinfo[:c+1])
			b.WriteString(redacted)
		} else {
			b.WriteString(userinfo)
		}
		b.WriteByte('@')
		rest = rest[at+1:]
	}
	b.WriteString(redactQuery(rest))
	return b.String()
}

// redactQuery redacts the values of password-like parameters in the query
// part of s (after the first '?').
func redactQuery(s string) string {
	q := strings.IndexByte(s, '?')
	if q < 0 {
		return s
	}
	params := strings.Split(s[q+1:], "&")
	for i, p := range params {
		if k, v, ok := strings.Cut(p, "="); ok && (isPasswordKey(k) || hasPasswordWord(v)) {
			params[i] = k + "=" + redacted
		}
	}
	return s[:q+1] + strings.Join(params, "&")
}

// isPasswordKey reports whether a DSN key or parameter names a secret.
func isPasswordKey(k string) bool {
	k = strings.ToLower(k)
	return strings.Contains(k, "pass") || strings.Contains(k, "secret") || strings.Contains(k, "token") || k == "pwd"
}

// hasPasswordWord reports whether s mentions a password anywhere.
func hasPasswordWord(s string) bool {
	s = strings.ToLower(s)
	return strings.Contains(s, "pass") || strings.Contains(s, "pwd") || strings.Contains(s, "secret") || strings.Contains(s, "token")
}

// isMySQLDriverAddr reports whether s, the part after the '@' of a Go MySQL
// driver DSN, looks like "tcp(host:3306)/db", "unix(/path)/db" or "/db".
func isMySQLDriverAddr(s string) bool {
	i := 0
	for i < len(s) && (s[i] >= 'a' && s[i] <= 'z' || s[i] >= '0' && s[i] <= '9') {
		i++
	}
	if i < len(s) && s[i] == '(' {
		end := strings.IndexByte(s[i:], ')')
		if end < 0 {
			return false
		}
		i += end + 1
	}
	return i < len(s) && s[i] == '/'
}

// redactKeyValue redacts a libpq-style "key=value key='quoted value'" DSN.
// It reports false when s is not entirely of that shape.
func redactKeyValue(s string) (string, bool) {
	var b strings.Builder
	pairs := 0
	i := 0
	for {
		start := i
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i == len(s) {
			b.WriteString(s[start:])
			return b.String(), pairs > 0
		}
		k := i
		for i < len(s) && isKeyChar(s[i], i == k) {
			i++
		}
		key := s[k:i]
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if key == "" || i == len(s) || s[i] != '=' {
			return "", false
		}
		i++
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		v := i
		if i < len(s) && s[i] == '\'' {
			i++
			for i < len(s) && s[i] != '\'' {
				if s[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(s) {
				return "", false // unterminated quote
			}
			i++
		} else {
			for i < len(s) && !isSpace(s[i]) {
				if s[i] == '\\' {
					i++
				}
				i++
			}
			i = min(i, len(s))
		}
		b.WriteString(s[start:v])
		switch {
		case isPasswordKey(key):
			b.WriteString(redacted)
		case hasPasswordWord(s[v:i]):
			return "", false // "Id=u;Password=p": not of this shape after all
		default:
			b.WriteString(s[v:i])
		}
		pairs++
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isKeyChar(c byte, first bool) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		return true
	case !first && (c >= '0' && c <= '9' || c == '.' || c == '-'):
		return true
	}
	return false
}

// Password holds a value that is secret whole, such as kafka.sasl's
// password: unlike a Secret, which shows a DSN with its password hidden,
// every printed form of a Password is "xxxxx" (or "" when it is empty),
// through the same channels (fmt with any verb, slog, encoding/json).
// Only Value returns the raw string.
type Password string

// Value returns the raw value, for the client that authenticates. Never log it.
func (p Password) Value() string { return string(p) }

// String returns "xxxxx", or "" for an empty Password.
func (p Password) String() string {
	if p == "" {
		return ""
	}
	return redacted
}

// GoString returns config.Password("xxxxx"), for %#v.
func (p Password) GoString() string { return "config.Password(" + strconv.Quote(p.String()) + ")" }

// Format prints String with any verb.
func (p Password) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, p.GoString())
		return
	}
	_, _ = fmt.Fprintf(f, fmt.FormatString(f, verb), p.String())
}

// MarshalText returns String, so that text encodings never contain the value.
func (p Password) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// LogValue returns String, for log/slog.
func (p Password) LogValue() slog.Value { return slog.StringValue(p.String()) }
