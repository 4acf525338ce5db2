package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxNodes bounds the values one file may hold once aliases are expanded, so
// that a few lines of nested aliases cannot make Parse run for hours.
const maxNodes = 100_000

// Load reads the config file at path and parses it with Parse, expanding
// ${VAR} from the process environment. A file that cannot be read gives the
// *fs.PathError wrapped; any problem in the file gives Errors.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data, os.LookupEnv)
}

// Parse parses data, the contents of the config file named file (used in
// positions and error messages only). It decodes strictly, expands ${VAR} in
// every scalar value with lookupEnv (nil means an empty environment), reads
// the files the _file form of secret keys names (dsn_file...), applies
// the defaults for absent keys and validates the result. It returns the
// Config, or nil and an Errors listing every problem found, each with its
// position and path.
func Parse(file string, data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	if lookupEnv == nil {
		lookupEnv = func(string) (string, bool) { return "", false }
	}
	root, perr := parseYAML(file, data)
	if perr != nil {
		return nil, Errors{perr}
	}
	d := newDecoder(file, lookupEnv)
	d.src = data
	c := Default()
	c.File = file
	d.object(root, "", reflect.ValueOf(c).Elem(), "")
	c.deriveDefaults()

	v := validator{c: c, fromEnv: d.fromEnv}
	v.run()
	if errs := d.merge(v.errs); len(errs) > 0 {
		return nil, errs
	}
	return c, nil
}

// parseYAML reads the single document in data and returns its top-level
// mapping.
func parseYAML(file string, data []byte) (root *yaml.Node, perr *Error) {
	defer func() {
		if r := recover(); r != nil {
			root, perr = nil, &Error{Pos: Pos{File: file}, Msg: "not valid YAML (the YAML parser failed)"}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	err := dec.Decode(&doc)
	if errors.Is(err, io.EOF) {
		return nil, &Error{Pos: Pos{File: file}, Msg: "the file is empty"}
	}
	if err != nil {
		return nil, yamlError(file, err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		p := Pos{File: file, Line: extra.Line}
		return nil, &Error{Pos: p, Msg: "a second YAML document: the file must hold exactly one"}
	case !errors.Is(err, io.EOF):
		return nil, yamlError(file, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || isNull(doc.Content[0]) {
		return nil, &Error{Pos: Pos{File: file}, Msg: "the file is empty"}
	}
	root = doc.Content[0]
	if root.Kind != yaml.MappingNode {
		p := Pos{File: file, Line: root.Line, Col: root.Column}
		return nil, &Error{Pos: p, Msg: "the top level must be a mapping of sections (source, kafka, target, mappings, ...), got " + kindName(root)}
	}
	return root, nil
}

var yamlLine = regexp.MustCompile(`^line (\d+): (.*)$`)

// yamlError turns a YAML syntax error into an *Error with the line yaml
// reports (it gives no column).
func yamlError(file string, err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	p := Pos{File: file}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	if isParserError(msg) {
		// yaml reports the 0-based line of the construct the parser was in
		// (and no line for the first one); make it the 1-based line.
		p.Line++
	}
	if strings.Contains(msg, "mapping values are not allowed") {
		msg += ` (quote a value that contains ": ", e.g. status: 'row.s == "" ? "new" : row.s')`
	}
	return &Error{Pos: p, Msg: "not valid YAML: " + msg}
}

// isParserError reports whether msg comes from yaml's parser, whose lines
// are 0-based, rather than from its scanner, whose lines are 1-based.
func isParserError(msg string) bool {
	for _, prefix := range []string{"did not find expected", "found duplicate %", "found incompatible YAML document", "found undefined tag handle"} {
		if strings.HasPrefix(msg, prefix) {
			return true
		}
	}
	return false
}

// decoder walks the YAML node tree into a Config, recording every problem
// and where each value sits.
type decoder struct {
	file    string
	lookup  func(string) (string, bool)
	budget  int             // values that may still be visited
	errs    Errors          // problems found while decoding
	pos     map[string]Pos  // path -> position of its value
	bad     map[string]bool // paths whose value could not be decoded
	fromEnv map[string]bool // paths whose value had a ${VAR} substituted
	src     []byte          // the file, to place the text of block scalars
}

func newDecoder(file string, lookup func(string) (string, bool)) *decoder {
	return &decoder{
		file:    file,
		lookup:  lookup,
		budget:  maxNodes,
		pos:     map[string]Pos{},
		bad:     map[string]bool{},
		fromEnv: map[string]bool{},
	}
}

// merge returns the decoding problems and the rule violations found in
// what was decoded, in file order. A violation inside a value that could
// not be decoded is left out, and the others get the position of the value
// they name, or of its nearest ancestor in the file.
func (d *decoder) merge(violations Errors) Errors {
	errs := d.errs
	for _, e := range violations {
		if d.covers(e.Path) {
			continue
		}
		if p, ok := d.posOf(e.Path); ok {
			e.Pos = p
		}
		errs = append(errs, e)
	}
	sortErrors(errs)
	return errs
}

func (d *decoder) at(n *yaml.Node) Pos { return Pos{File: d.file, Line: n.Line, Col: n.Column} }

func (d *decoder) fail(n *yaml.Node, path, msg string) {
	d.errs = append(d.errs, &Error{Pos: d.at(n), Path: path, Msg: msg})
}

// badValue records that the value at path could not be decoded, so that
// validation does not also complain about what is missing there.
func (d *decoder) badValue(n *yaml.Node, path, msg string) {
	d.bad[path] = true
	d.fail(n, path, msg)
}

// covers reports whether path is, or is inside, a value that could not be
// decoded.
func (d *decoder) covers(path string) bool {
	for p := path; ; p = parentPath(p) {
		if d.bad[p] {
			return true
		}
		if p == "" {
			return false
		}
	}
}

// posOf returns the position of the value at path, or of its nearest
// ancestor that is in the file.
func (d *decoder) posOf(path string) (Pos, bool) {
	for p := path; p != ""; p = parentPath(p) {
		if pos, ok := d.pos[p]; ok {
			return pos, true
		}
	}
	return Pos{}, false
}

// parentPath strips the last element of a path ("a.b[2]" -> "a.b" -> "a").
// It is only used on paths made of plain keys and indexes.
func parentPath(p string) string {
	return p[:max(0, strings.LastIndexAny(p, ".["))]
}

// value resolves aliases, records the position of the value at path and
// returns it, or nil when it is null or the value budget is spent.
func (d *decoder) value(n *yaml.Node, path string) *yaml.Node {
	n = resolve(n)
	if n == nil || n.Kind == yaml.AliasNode {
		return nil
	}
	if d.budget--; d.budget == 0 {
		d.fail(n, path, fmt.Sprintf("too many values once aliases are expanded (at most %d)", maxNodes))
	}
	if d.budget <= 0 {
		return nil
	}
	d.pos[path] = d.at(n)
	if isNull(n) {
		return nil
	}
	return n
}

// node returns the value at path (see value) when it is of the wanted kind;
// otherwise it reports "must be <what>" and returns nil.
func (d *decoder) node(n *yaml.Node, path string, want yaml.Kind, what string) *yaml.Node {
	n = d.value(n, path)
	if n != nil && n.Kind != want {
		d.badValue(n, path, "must be "+what+", got "+kindName(n))
		return nil
	}
	return n
}

// pairs calls each for every key of mapping node n in file order, after
// rejecting keys that are not strings, merge keys and duplicates.
func (d *decoder) pairs(n *yaml.Node, path string, each func(key string, k, v *yaml.Node, kpath string)) {
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if r := resolve(k); r != nil {
			k = r
		}
		if k.Kind != yaml.ScalarNode {
			d.fail(k, path, "keys must be strings, got "+kindName(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			d.fail(k, path, "merge keys (<<) are not supported")
			continue
		}
		key := k.Value
		kpath := joinPath(path, key)
		if first, ok := seen[key]; ok {
			d.fail(k, kpath, "duplicate key (first at "+d.at(first).String()+")")
			continue
		}
		seen[key] = k
		each(key, k, v, kpath)
	}
}

// decode stores n, the value at path, in v, as v's type says; f is the
// field v is (the zero field for a list item).
func (d *decoder) decode(n *yaml.Node, path string, v reflect.Value, f field) {
	t := v.Type()
	what := cmp.Or(f.what, whatOf(t))
	switch {
	case t == exprType:
		v.Set(reflect.ValueOf(d.expr(n, path)))
	case t.Kind() == reflect.Pointer:
		if isNull(resolve(n)) {
			return // a key with no value is the same as no key
		}
		p := reflect.New(t.Elem())
		setDefaults(p)
		d.decode(n, path, p.Elem(), f)
		v.Set(p)
	case t.Kind() == reflect.Struct:
		d.object(n, path, v, what)
	case t.Kind() == reflect.Slice && f.split != "" && resolve(n) != nil && resolve(n).Kind == yaml.ScalarNode:
		d.split(n, path, v, f.split)
	case t.Kind() == reflect.Slice:
		if key, value, keyed := keyedFields(t.Elem()); keyed {
			d.keyed(n, path, v, what, key, value)
			return
		}
		d.list(n, path, func(item *yaml.Node, path string) {
			e := reflect.New(t.Elem()).Elem()
			setDefaults(e)
			d.decode(item, path, e, field{})
			v.Set(reflect.Append(v, e))
		})
	default:
		d.scalar(n, path, v, what)
	}
}

// object decodes a YAML mapping into v, a struct: each key into the field
// tagged with it, any other key an error. Then it sets v's Pos fields.
func (d *decoder) object(n *yaml.Node, path string, v reflect.Value, what string) {
	fields := fieldsOf(v.Type())
	if n := d.node(n, path, yaml.MappingNode, what); n != nil {
		seen := map[string]*yaml.Node{}
		d.pairs(n, path, func(key string, k, val *yaml.Node, kpath string) {
			seen[key] = k
			for _, f := range fields {
				if f.key == key && key != "" {
					d.decode(val, kpath, v.Field(f.index), f)
					return
				}
				if f.key != "" && key == f.key+fileSuffix && isSecret(v.Field(f.index).Type()) {
					d.secretFile(val, kpath, joinPath(path, f.key), v.Field(f.index))
					return
				}
			}
			var known []string
			for _, f := range fields {
				if f.key != "" {
					known = append(known, f.key)
				}
				if f.key != "" && isSecret(v.Field(f.index).Type()) {
					known = append(known, f.key+fileSuffix)
				}
			}
			d.fail(k, kpath, "unknown key (known: "+strings.Join(known, ", ")+")")
		})
		for _, f := range fields {
			if k := seen[f.key+fileSuffix]; k != nil && seen[f.key] != nil && f.key != "" {
				d.badValue(k, joinPath(path, f.key+fileSuffix), "set either "+f.key+" or "+f.key+fileSuffix+", not both")
			}
		}
	}
	d.setPositions(v, path, fields)
}

// fileSuffix makes the key of a secret's file form: dsn -> dsn_file.
const fileSuffix = "_file"

// secretFile decodes n, the value of the file form of a secret key (at
// path; the secret's own key is at secretPath), as the path of a file,
// and stores the file's content, white space around it dropped, in v, a
// Secret or a Password. Errors name the key and the path, never the content; the value
// counts as from the environment, so validation never quotes it.
func (d *decoder) secretFile(n *yaml.Node, path, secretPath string, v reflect.Value) {
	name, ok := d.str(n, path, "the path of a file")
	if !ok || name == "" {
		return
	}
	data, err := readSecretFile(name)
	if err != nil {
		d.badValue(n, path, err.Error())
		d.bad[secretPath] = true
		return
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		d.badValue(n, path, "file "+strconv.Quote(name)+" is empty")
		d.bad[secretPath] = true
		return
	}
	d.pos[secretPath] = d.pos[path]
	d.fromEnv[secretPath] = true
	x, _ := parseScalar(v.Type(), string(data))
	v.Set(x)
}

// readSecretFile reads the file holding a secret. Its error says which file
// could not be read and why, never what is in it.
// At most maxSecretBytes are read, so that a wrong path (/dev/zero, a
// large file) fails instead of filling memory.
func readSecretFile(name string) ([]byte, error) {
	data, err := readAtMost(name, maxSecretBytes+1)
	var pe *fs.PathError
	switch {
	case errors.As(err, &pe):
		return nil, fmt.Errorf("read %s: %w", strconv.Quote(name), pe.Err)
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", strconv.Quote(name), err)
	case len(data) > maxSecretBytes:
		return nil, fmt.Errorf("read %s: larger than %d bytes, too large for a secret", strconv.Quote(name), maxSecretBytes)
	}
	return data, nil
}

// maxSecretBytes is the largest secret file read.
const maxSecretBytes = 64 << 10

// readAtMost reads up to n bytes of the file name.
func readAtMost(name string, n int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, n))
}

// setPositions sets the Pos and []Pos fields of v, the struct at path, as
// their pos tags say.
func (d *decoder) setPositions(v reflect.Value, path string, fields []field) {
	for _, f := range fields {
		fv := v.Field(f.index)
		switch {
		case fv.Type() == posType:
			pos := d.pos[path]
			if p, ok := d.pos[joinPath(path, f.pos)]; ok && f.pos != "" {
				pos = p
			}
			fv.Set(reflect.ValueOf(pos))
		case fv.Type() == reflect.SliceOf(posType) && f.pos != "":
			lpath := joinPath(path, f.pos)
			var ps []Pos
			for i := range v.Field(keyOf(v.Type(), f.pos)).Len() {
				ps = append(ps, d.pos[fmt.Sprintf("%s[%d]", lpath, i)])
			}
			fv.Set(reflect.ValueOf(ps))
		}
	}
}

// keyed decodes a YAML mapping into v, a list of structs: each key and
// value into the fields with index key and value of one element, in file
// order.
func (d *decoder) keyed(n *yaml.Node, path string, v reflect.Value, what string, key, value int) {
	if n = d.node(n, path, yaml.MappingNode, what); n == nil {
		return
	}
	t := v.Type().Elem()
	fields := fieldsOf(t)
	d.pairs(n, path, func(k string, _, val *yaml.Node, kpath string) {
		e := reflect.New(t).Elem()
		setDefaults(e)
		e.Field(key).SetString(k)
		d.decode(val, kpath, e.Field(value), fields[value])
		d.setPositions(e, kpath, fields)
		v.Set(reflect.Append(v, e))
	})
}

// list decodes a YAML sequence, calling each for every item.
func (d *decoder) list(n *yaml.Node, path string, each func(item *yaml.Node, path string)) {
	if n = d.node(n, path, yaml.SequenceNode, "a list"); n == nil {
		return
	}
	for i, item := range n.Content {
		each(item, fmt.Sprintf("%s[%d]", path, i))
	}
}

// split decodes a scalar into v, a list of strings, as the items of the
// string between sep: each trimmed, empty ones dropped. Every item has the
// scalar's position, and came from the environment when the scalar did.
func (d *decoder) split(n *yaml.Node, path string, v reflect.Value, sep string) {
	s, ok := d.str(n, path, "a list or a string of items separated by "+strconv.Quote(sep))
	if !ok {
		return
	}
	for item := range strings.SplitSeq(s, sep) {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		ipath := fmt.Sprintf("%s[%d]", path, v.Len())
		d.pos[ipath] = d.pos[path]
		d.fromEnv[ipath] = d.fromEnv[path]
		v.Set(reflect.Append(v, reflect.ValueOf(item).Convert(v.Type().Elem())))
	}
}

// str decodes a scalar as a string with ${VAR} expanded; what names the
// value when it is not a scalar. It reports false when the value is null or
// could not be decoded.
func (d *decoder) str(n *yaml.Node, path, what string) (string, bool) {
	if n = d.node(n, path, yaml.ScalarNode, what); n == nil {
		return "", false
	}
	s, substituted, problems := expand(n.Value, d.lookup)
	for _, p := range problems {
		d.badValue(n, path, p)
	}
	if substituted {
		d.fromEnv[path] = true
	}
	return s, len(problems) == 0
}

// scalar decodes a string with str, converts it to v's type and stores it
// in v. Null leaves v (its default) as it is, and so does "" for a string.
// A value that does not convert is reported as "must be <what>" with the
// text, unless the text came from the environment.
func (d *decoder) scalar(n *yaml.Node, path string, v reflect.Value, what string) {
	s, ok := d.str(n, path, what)
	if !ok || s == "" && v.Kind() == reflect.String {
		return
	}
	x, err := parseScalar(v.Type(), s)
	if err != nil {
		d.badValue(n, path, "must be "+what+quoteUnlessEnv(d.fromEnv, path, ", got ", s))
		return
	}
	v.Set(x)
}

// expr decodes a CEL expression; its position is that of its text: the
// value's, past the opening quote of a quoted scalar, or for a block
// scalar where its text starts (blockStart).
func (d *decoder) expr(n *yaml.Node, path string) Expr {
	s, _ := d.str(n, path, "a string")
	pos := d.pos[path]
	r := resolve(n)
	switch {
	case r == nil || r.Kind != yaml.ScalarNode || pos.Line == 0:
	case r.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0:
		if start, ok := blockStart(d.src, r.Line); ok {
			pos.Line, pos.Col = start.Line, start.Col
		}
	case r.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0:
		pos.Col++
	}
	return Expr{Text: s, Pos: pos}
}

// blockStart is where the text of a block scalar whose indicator (| or >)
// is on line header of src starts: the next line, at the block's
// indentation, that of its first line that is not blank. A block whose
// indentation the header gives (|2) and whose first line is indented more
// is placed at that line's text. ok is false when the block is empty.
func blockStart(src []byte, header int) (pos Pos, ok bool) {
	lines := bytes.Split(src, []byte("\n"))
	for i := header; i < len(lines); i++ { // lines[header] is the line after the header's
		line := bytes.TrimRight(lines[i], "\r")
		text := bytes.TrimLeft(line, " ")
		if len(text) > 0 {
			return Pos{Line: header + 1, Col: len(line) - len(text) + 1}, true
		}
	}
	return Pos{}, false
}

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n != nil && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// kindName names a node's kind for "must be X, got Y" messages.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "nothing"
		case "!!int", "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		}
		return "a string"
	}
	return "something else"
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// joinPath appends key to path: "a" + "b" -> "a.b"; keys that are not plain
// identifiers are quoted: a["b c"]. A key that looks like a DSN is redacted.
func joinPath(path, key string) string {
	if !identifier.MatchString(key) {
		return path + "[" + strconv.Quote(Redact(key)) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}
