package config

import (
	"cmp"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// A config key is declared once, as a field of Config or of a struct inside
// it, with these tags:
//
//	yaml:"chunk_rows"  the key in tandem.yaml; a field without it is not
//	                   read from the file (File, Pos...)
//	default:"5000"     the value of an absent, null or "" key (Parse) and
//	                   of a zero field (SetDefaults, Default)
//	what:"..."         what the value must be: "must be <what>, got ..."
//	                   when it cannot be decoded (without the tag, what the
//	                   field's type holds: "a whole number", "a list"...),
//	                   and "must be <what>" when check fails and there is
//	                   no must tag
//	check:">0|-1"      the values Validate accepts: alternatives ">N",
//	                   ">=N", "A..B" or "N", joined by "|"; on a string they
//	                   apply to its length in bytes
//	must:"..."         Validate's message when check fails, after "must ";
//	                   without it or what, the message is made from a
//	                   one-part check ("must be more than 0", "must be from
//	                   1 to 10000")
//	pos:"from"         on a Pos field: the position of that key's value, or
//	                   of the struct's own value when the key is absent (a
//	                   Pos field without the tag always gets the latter); on
//	                   a []Pos field: the position of each item of that list
//	split:","          on a list of strings: a scalar is taken as the list,
//	                   split at the separator, each item trimmed and empty
//	                   items dropped (brokers: ${BROKERS} with
//	                   BROKERS=k1:9092,k2:9092)
//	mapping:"key"      on the fields of a list's element type: the list is
//	mapping:"value"    written as a YAML mapping, each key and value making
//	                   one element, in file order (columns, tolerate_columns)
//
// Rules between keys (a mapping's from is one of source.tables...) are
// written out in validate.go.

// field is one tagged field of a config struct.
type field struct {
	index int    // in the struct
	key   string // yaml key; "" when the field is not read from the file
	def   string // default tag
	what  string // what tag
	check string // check tag
	must  string // must tag
	pos   string // pos tag
	split string // split tag
}

// fieldsOf returns the fields of struct type t, in declaration order.
func fieldsOf(t reflect.Type) []field {
	fields := make([]field, t.NumField())
	for i := range fields {
		tag := t.Field(i).Tag
		key, _, _ := strings.Cut(tag.Get("yaml"), ",")
		if key == "-" {
			key = ""
		}
		fields[i] = field{
			index: i, key: key, def: tag.Get("default"), what: tag.Get("what"),
			check: tag.Get("check"), must: tag.Get("must"), pos: tag.Get("pos"),
			split: tag.Get("split"),
		}
	}
	return fields
}

// keyOf returns the index of the field of t tagged yaml:key, or -1.
func keyOf(t reflect.Type, key string) int {
	for _, f := range fieldsOf(t) {
		if f.key == key {
			return f.index
		}
	}
	return -1
}

// keyedFields returns the indexes of the mapping:"key" and mapping:"value"
// fields of t, and whether t has both: whether a list of t is written as a
// YAML mapping.
func keyedFields(t reflect.Type) (key, value int, ok bool) {
	if t.Kind() != reflect.Struct {
		return 0, 0, false
	}
	key, value = -1, -1
	for i := range t.NumField() {
		switch t.Field(i).Tag.Get("mapping") {
		case "key":
			key = i
		case "value":
			value = i
		}
	}
	return key, value, key >= 0 && value >= 0
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	secretType   = reflect.TypeFor[Secret]()
	passwordType = reflect.TypeFor[Password]()
	exprType     = reflect.TypeFor[Expr]()
	posType      = reflect.TypeFor[Pos]()
)

// isSecret reports whether t holds a secret: a Secret or a Password,
// which have a _file form.
func isSecret(t reflect.Type) bool { return t == secretType || t == passwordType }

// whatOf names the values of type t, for "must be <what>" messages.
func whatOf(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration such as 30s, 1m or 1h30m"
	case t == exprType || t.Kind() == reflect.String:
		return "a string"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		return "a whole number"
	case t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uint64:
		return fmt.Sprintf("a whole number from 0 to %d", uint64(1)<<t.Bits()-1)
	case t.Kind() == reflect.Slice:
		if _, _, keyed := keyedFields(t.Elem()); keyed {
			return "a mapping"
		}
		return "a list"
	}
	return "a mapping"
}

// parseScalar converts s, a scalar of the file or a default tag, to a value
// of type t: a boolean, a string (a Secret with surrounding white space dropped: it is
// never part of a DSN, and a block scalar or a variable read from a file
// often ends with a newline), a whole number or a time.Duration.
func parseScalar(t reflect.Type, s string) (reflect.Value, error) {
	v := reflect.New(t).Elem()
	switch {
	case t == durationType:
		d, err := time.ParseDuration(s)
		v.SetInt(int64(d))
		return v, err
	case isSecret(t):
		v.SetString(strings.TrimSpace(s))
	case t.Kind() == reflect.String:
		v.SetString(s)
	case t.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		v.SetBool(b)
		return v, err
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		n, err := strconv.ParseInt(s, 10, t.Bits())
		v.SetInt(n)
		return v, err
	case t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uint64:
		n, err := strconv.ParseUint(s, 10, t.Bits())
		v.SetUint(n)
		return v, err
	default:
		return v, fmt.Errorf("no scalar of type %s", t)
	}
	return v, nil
}

// setDefaults sets every zero field of v, a struct, that has a default tag,
// in v and in the structs and lists inside it.
func setDefaults(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			setDefaults(v.Elem())
		}
	case reflect.Slice:
		for i := range v.Len() {
			setDefaults(v.Index(i))
		}
	case reflect.Struct:
		for _, f := range fieldsOf(v.Type()) {
			fv := v.Field(f.index)
			if f.def != "" && fv.IsZero() {
				d, err := parseScalar(fv.Type(), f.def)
				if err != nil {
					panic(fmt.Sprintf("config: default tag of %s.%s: %v", v.Type(), v.Type().Field(f.index).Name, err))
				}
				fv.Set(d)
			}
			setDefaults(fv)
		}
	}
}

// checkValue reports whether v passes check, a check tag; v is a whole
// number, a time.Duration or a string (its length counts).
func checkValue(check string, v reflect.Value) (bool, error) {
	var n int64
	switch v.Kind() {
	case reflect.String:
		n = int64(v.Len())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n = v.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n = int64(min(v.Uint(), 1<<63-1))
	default:
		return false, fmt.Errorf("check on a %s", v.Type())
	}
	ok := false
	for alt := range strings.SplitSeq(check, "|") {
		lo, hi, err := checkRange(alt)
		if err != nil {
			return false, err
		}
		ok = ok || lo <= n && n <= hi
	}
	return ok, nil
}

// checkRange returns the smallest and largest value one alternative of a
// check tag accepts.
func checkRange(alt string) (lo, hi int64, err error) {
	atoi := func(s string) int64 {
		n, e := strconv.ParseInt(s, 10, 64)
		err = cmp.Or(err, e)
		return n
	}
	switch a, b, isRange := strings.Cut(alt, ".."); {
	case isRange:
		lo, hi = atoi(a), atoi(b)
	case strings.HasPrefix(alt, ">="):
		lo, hi = atoi(alt[2:]), 1<<63-1
	case strings.HasPrefix(alt, ">"):
		lo, hi = atoi(alt[1:])+1, 1<<63-1
	default:
		lo = atoi(alt)
		hi = lo
	}
	if err != nil {
		return 0, 0, fmt.Errorf("check %q: %w", alt, err)
	}
	return lo, hi, nil
}

// checkMessage returns what Validate says when f's check fails.
func checkMessage(f field) string {
	switch {
	case f.must != "":
		return "must " + f.must
	case f.what != "":
		return "must be " + f.what
	}
	a, b, isRange := strings.Cut(f.check, "..")
	switch {
	case strings.Contains(f.check, "|"):
	case isRange:
		return "must be from " + a + " to " + b
	case strings.HasPrefix(f.check, ">="):
		return "must be " + f.check[2:] + " or more"
	case strings.HasPrefix(f.check, ">"):
		return "must be more than " + f.check[1:]
	}
	return "must be " + strings.ReplaceAll(f.check, "|", " or ")
}
