package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

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
// every scalar value with lookupEnv (nil means an empty environment), applies
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
	d := &decoder{
		file:    file,
		lookup:  lookupEnv,
		budget:  maxNodes,
		pos:     map[string]Pos{},
		bad:     map[string]bool{},
		fromEnv: map[string]bool{},
	}
	c := Default()
	c.File = file
	d.config(root, c)

	v := validator{c: c, fromEnv: d.fromEnv}
	v.run()
	errs := d.errs
	for _, e := range v.errs {
		if d.covers(e.Path) {
			continue
		}
		if p, ok := d.posOf(e.Path); ok {
			e.Pos = p
		}
		errs = append(errs, e)
	}
	if len(errs) > 0 {
		sortErrors(errs)
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
}

// field is one key a YAML mapping accepts.
type field struct {
	key    string
	decode func(n *yaml.Node, path string)
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

// mapping decodes a YAML mapping whose keys must be among fields. It
// returns the mapping node, or nil when the value is null or not a mapping.
func (d *decoder) mapping(n *yaml.Node, path string, fields ...field) *yaml.Node {
	if n = d.node(n, path, yaml.MappingNode, "a mapping"); n == nil {
		return nil
	}
	d.pairs(n, path, func(key string, k, v *yaml.Node, kpath string) {
		for _, f := range fields {
			if f.key == key {
				f.decode(v, kpath)
				return
			}
		}
		known := make([]string, len(fields))
		for i, f := range fields {
			known[i] = f.key
		}
		d.fail(k, kpath, "unknown key (known: "+strings.Join(known, ", ")+")")
	})
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

// list decodes a YAML sequence, calling each for every item.
func (d *decoder) list(n *yaml.Node, path string, each func(item *yaml.Node, path string)) {
	if n = d.node(n, path, yaml.SequenceNode, "a list"); n == nil {
		return
	}
	for i, item := range n.Content {
		each(item, fmt.Sprintf("%s[%d]", path, i))
	}
}

// str decodes a scalar as a string with ${VAR} expanded. It reports false
// when the value is null or could not be decoded.
func (d *decoder) str(n *yaml.Node, path string) (string, bool) {
	if n = d.node(n, path, yaml.ScalarNode, "a string"); n == nil {
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

// scalar decodes a string with str and converts it with parse; on failure it
// reports "must be <what>" and the text, unless the text came from the
// environment.
func scalar[T any](d *decoder, n *yaml.Node, path, what string, parse func(string) (T, error)) (T, bool) {
	var zero T
	s, ok := d.str(n, path)
	if !ok {
		return zero, false
	}
	v, err := parse(s)
	if err != nil {
		d.badValue(n, path, "must be "+what+quoteUnlessEnv(d.fromEnv, path, ", got ", s))
		return zero, false
	}
	return v, true
}

// setString returns a field decoder that stores a non-empty string in dst;
// null and "" leave dst (its default) as it is.
func setString[T ~string](d *decoder, dst *T) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		if s, ok := d.str(n, path); ok && s != "" {
			*dst = T(s)
		}
	}
}

// setDSN returns a field decoder for a DSN. Surrounding white space is
// dropped: it is never part of a DSN, and a block scalar or a variable read
// from a file often ends with a newline.
func setDSN(d *decoder, dst *Secret) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		if s, ok := d.str(n, path); ok {
			*dst = Secret(strings.TrimSpace(s))
		}
	}
}

// setInt returns a field decoder that stores an integer in dst.
func setInt(d *decoder, dst *int) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		if v, ok := scalar(d, n, path, "a whole number", strconv.Atoi); ok {
			*dst = v
		}
	}
}

// setStrings returns a field decoder for a list of strings; when posDst is
// not nil it also gets the position of each item. Every item is kept, even
// a null or undecodable one (as ""), so that indexes match the file.
func setStrings(d *decoder, dst *[]string, posDst *[]Pos) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		d.list(n, path, func(item *yaml.Node, path string) {
			s, _ := d.str(item, path)
			*dst = append(*dst, s)
			if posDst != nil {
				*posDst = append(*posDst, d.pos[path])
			}
		})
	}
}

// expr decodes a CEL expression; its position is that of the value.
func (d *decoder) expr(n *yaml.Node, path string) Expr {
	s, _ := d.str(n, path)
	return Expr{Text: s, Pos: d.pos[path]}
}

// columns decodes a mapping of column name to expression, in file order.
func (d *decoder) columns(n *yaml.Node, path string) []Column {
	if n = d.node(n, path, yaml.MappingNode, "a mapping of column name to expression"); n == nil {
		return nil
	}
	var cols []Column
	d.pairs(n, path, func(name string, _, v *yaml.Node, cpath string) {
		cols = append(cols, Column{Name: name, Expr: d.expr(v, cpath)})
	})
	return cols
}

func (d *decoder) config(root *yaml.Node, c *Config) {
	d.mapping(root, "",
		field{"source", func(n *yaml.Node, p string) { d.source(n, p, &c.Source) }},
		field{"kafka", func(n *yaml.Node, p string) { d.kafka(n, p, &c.Kafka) }},
		field{"target", func(n *yaml.Node, p string) { d.target(n, p, &c.Target) }},
		field{"mappings", func(n *yaml.Node, p string) {
			d.list(n, p, func(item *yaml.Node, p string) {
				c.Mappings = append(c.Mappings, d.mappingEntry(item, p))
			})
		}},
		field{"reconcile", func(n *yaml.Node, p string) { d.reconcile(n, p, &c.Reconcile) }},
		field{"backfill", func(n *yaml.Node, p string) { d.backfill(n, p, &c.Backfill) }},
		field{"http", func(n *yaml.Node, p string) {
			d.mapping(n, p, field{"listen", setString(d, &c.HTTP.Listen)})
		}},
	)
}

func (d *decoder) source(n *yaml.Node, path string, s *Source) {
	d.mapping(n, path,
		field{"kind", setString(d, &s.Kind)},
		field{"dsn", setDSN(d, &s.DSN)},
		field{"tables", setStrings(d, &s.Tables, &s.TablesPos)},
		field{"mysql", func(n *yaml.Node, p string) {
			d.mapping(n, p, field{"server_id", func(n *yaml.Node, p string) {
				parse := func(s string) (uint32, error) {
					v, err := strconv.ParseUint(s, 10, 32)
					return uint32(v), err
				}
				if v, ok := scalar(d, n, p, "a whole number from 1 to 4294967295", parse); ok {
					s.MySQL.ServerID = v
				}
			}})
		}},
		field{"postgres", func(n *yaml.Node, p string) {
			d.mapping(n, p,
				field{"slot", setString(d, &s.Postgres.Slot)},
				field{"publication", setString(d, &s.Postgres.Publication)},
			)
		}},
	)
	s.Pos = d.pos[path]
}

func (d *decoder) kafka(n *yaml.Node, path string, k *Kafka) {
	d.mapping(n, path,
		field{"brokers", setStrings(d, &k.Brokers, nil)},
		field{"topic_prefix", setString(d, &k.TopicPrefix)},
		field{"partitions", setInt(d, &k.Partitions)},
		field{"group", setString(d, &k.Group)},
	)
}

func (d *decoder) target(n *yaml.Node, path string, t *Target) {
	d.mapping(n, path,
		field{"kind", setString(d, &t.Kind)},
		field{"dsn", setDSN(d, &t.DSN)},
		field{"state_schema", setString(d, &t.StateSchema)},
	)
	t.Pos = d.pos[path]
}

func (d *decoder) mappingEntry(n *yaml.Node, path string) Mapping {
	var m Mapping
	d.mapping(n, path,
		field{"name", setString(d, &m.Name)},
		field{"from", setString(d, &m.From)},
		field{"to", func(n *yaml.Node, p string) {
			d.list(n, p, func(item *yaml.Node, p string) {
				m.To = append(m.To, d.output(item, p))
			})
		}},
		field{"tolerate", setStrings(d, &m.Tolerate, nil)},
		field{"tolerate_columns", func(n *yaml.Node, p string) {
			if n = d.node(n, p, yaml.MappingNode, "a mapping of <to table>.<column> to a list of tolerances"); n == nil {
				return
			}
			d.pairs(n, p, func(col string, _, v *yaml.Node, cpath string) {
				ct := ColumnTolerance{Column: col, Pos: d.pos[cpath]}
				setStrings(d, &ct.Rules, nil)(v, cpath)
				m.TolerateColumns = append(m.TolerateColumns, ct)
			})
		}},
		field{"inverse", func(n *yaml.Node, p string) {
			inv := &Inverse{}
			if d.mapping(n, p, field{"columns", func(n *yaml.Node, p string) {
				inv.Columns = d.columns(n, p)
			}}, field{"ignore", setStrings(d, &inv.Ignore, nil)}) != nil {
				m.Inverse = inv
			}
		}},
	)
	m.Name = orDefault(m.Name, m.From)
	m.Pos = d.firstPos(path+".from", path)
	return m
}

func (d *decoder) output(n *yaml.Node, path string) Output {
	o := Output{Mode: ModeUpsert}
	d.mapping(n, path,
		field{"table", setString(d, &o.Table)},
		field{"key", setStrings(d, &o.Key, nil)},
		field{"mode", setString(d, &o.Mode)},
		field{"when", func(n *yaml.Node, p string) {
			if isNull(resolve(n)) {
				return // when: with no value is the same as no when
			}
			e := d.expr(n, p)
			o.When = &e
		}},
		field{"columns", func(n *yaml.Node, p string) { o.Columns = d.columns(n, p) }},
	)
	o.Pos = d.firstPos(path+".table", path)
	return o
}

func (d *decoder) reconcile(n *yaml.Node, path string, r *Reconcile) {
	d.mapping(n, path,
		field{"interval", func(n *yaml.Node, p string) {
			if v, ok := scalar(d, n, p, "a duration such as 30s, 1m or 1h30m", time.ParseDuration); ok {
				r.Interval = v
			}
		}},
		field{"tolerate", setStrings(d, &r.Tolerate, nil)},
		field{"settle", func(n *yaml.Node, p string) {
			if v, ok := scalar(d, n, p, "a duration such as 5s or 1m", time.ParseDuration); ok {
				r.Settle = v
			}
		}},
		field{"chunk_rows", setInt(d, &r.ChunkRows)},
		field{"max_rows_per_second", setInt(d, &r.MaxRowsPerSecond)},
		field{"checks", func(n *yaml.Node, p string) {
			d.list(n, p, func(item *yaml.Node, p string) {
				var c Check
				d.mapping(item, p,
					field{"name", setString(d, &c.Name)},
					field{"source", setString(d, &c.Source)},
					field{"target", setString(d, &c.Target)},
				)
				c.Pos = d.pos[p]
				r.Checks = append(r.Checks, c)
			})
		}},
	)
}

func (d *decoder) backfill(n *yaml.Node, path string, b *Backfill) {
	d.mapping(n, path,
		field{"chunk_rows", setInt(d, &b.ChunkRows)},
		field{"parallel", setInt(d, &b.Parallel)},
		field{"max_rows_per_second", setInt(d, &b.MaxRowsPerSecond)},
		field{"max_lag_seconds", setInt(d, &b.MaxLagSeconds)},
		field{"max_source_load", setInt(d, &b.MaxSourceLoad)},
	)
}

// firstPos returns the recorded position of the first path that has one.
func (d *decoder) firstPos(paths ...string) Pos {
	for _, p := range paths {
		if pos, ok := d.pos[p]; ok {
			return pos
		}
	}
	return Pos{}
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
