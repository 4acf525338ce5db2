package config

import "strings"

// expand replaces each ${NAME} in s with the value lookup returns for NAME
// and each $$ with a single $; any other $ stays as it is. It reports whether
// any variable was substituted, and one message per problem: a variable that
// is not set, an unterminated ${ or an invalid name. Messages name the
// variable, never a value.
func expand(s string, lookup func(string) (string, bool)) (out string, substituted bool, problems []string) {
	if !strings.Contains(s, "$") {
		return s, false, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				problems = append(problems, "unterminated ${: write ${NAME}, or $$ for a literal $")
				b.WriteString(s[i:])
				return b.String(), substituted, problems
			}
			name := s[i+2 : i+2+end]
			i += 2 + end
			if !validVarName(name) {
				problems = append(problems, "invalid environment variable reference: ${...} must hold a name of letters, digits and _ (write $$ for a literal $)")
				continue
			}
			v, ok := lookup(name)
			if !ok {
				problems = append(problems, "environment variable "+name+" is not set")
				continue
			}
			b.WriteString(v)
			substituted = true
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), substituted, problems
}

// validVarName reports whether name is a shell-style variable name.
func validVarName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
