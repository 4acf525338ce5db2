package config

import (
	"fmt"
	"net"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Validate checks every rule of tandem.yaml on c and returns all the
// problems at once as Errors, in file order, or nil. Positions come from the
// Pos fields of c; Parse, which has the file, gives each problem the
// position of the value itself. Defaults are not applied: call SetDefaults
// first on a Config built in code.
func (c *Config) Validate() error {
	v := validator{c: c}
	v.run()
	if len(v.errs) == 0 {
		return nil
	}
	sortErrors(v.errs)
	return v.errs
}

var (
	topicPrefixRE  = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	slotRE         = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)
	kinds          = []string{KindMySQL, KindPostgres}
	modes          = []string{ModeUpsert, ModeCreateIfAbsent}
	guards         = []string{GuardReport, GuardReject}
	onDeletes      = []string{OnDeleteDelete, OnDeleteClear}
	saslMechanisms = []string{SASLPlain, SASLScramSHA256, SASLScramSHA512}
	tolerances     = []Tolerance{TolerateNullEqualsEmpty, TolerateTrimSpace, TolerateFloatEpsilon, TolerateTimePrecisionMS, TolerateCaseInsensitive}
	// dsnSchemes are the URL schemes a DSN of each kind may have.
	dsnSchemes = map[string][]string{
		KindMySQL:    {"mysql", "mariadb"},
		KindPostgres: {"postgres", "postgresql"},
	}
)

// validator collects the rule violations of one Config.
type validator struct {
	c       *Config
	fromEnv map[string]bool // paths whose value came from ${VAR}: never quoted
	errs    Errors
}

func (v *validator) add(pos Pos, path, msg string) {
	if pos.File == "" {
		pos.File = v.c.File
	}
	v.errs = append(v.errs, &Error{Pos: pos, Path: path, Msg: msg})
}

// got returns `, got "value"`, or "" when the value at path came from the
// environment and so may be a secret.
func (v *validator) got(path, value string) string {
	return quoteUnlessEnv(v.fromEnv, path, ", got ", value)
}

// quoteUnlessEnv returns prefix and the quoted value, or "" when the value at
// path came from the environment.
func quoteUnlessEnv(fromEnv map[string]bool, path, prefix, value string) string {
	if fromEnv[path] {
		return ""
	}
	return prefix + strconv.Quote(value)
}

func (v *validator) run() {
	c := v.c
	v.checkTags(reflect.ValueOf(c).Elem(), "", Pos{})
	v.source(&c.Source)
	v.kafka(&c.Kafka)
	v.database("target", c.Target.Pos, c.Target.Kind, c.Target.DSN)
	v.mappings()
	v.reconcile(&c.Reconcile)
	v.cutover(c.Cutover)
	if l := c.HTTP.Listen; l == "" {
		v.add(Pos{}, "http.listen", "required: host:port")
	} else if !validListen(l) {
		v.add(Pos{}, "http.listen", "must be host:port, such as 127.0.0.1:9187 or :9187"+v.got("http.listen", l))
	}
}

// checkTags applies the check tags of the fields of v, the value at path,
// and of the structs and lists inside it. An error is placed at pos, or at
// the Pos of the nearest struct that has one.
func (v *validator) checkTags(rv reflect.Value, path string, pos Pos) {
	switch rv.Kind() {
	case reflect.Pointer:
		if !rv.IsNil() {
			v.checkTags(rv.Elem(), path, pos)
		}
	case reflect.Slice:
		key, _, keyed := keyedFields(rv.Type().Elem())
		for i := range rv.Len() {
			p := fmt.Sprintf("%s[%d]", path, i)
			if keyed {
				p = joinPath(path, rv.Index(i).Field(key).String())
			}
			v.checkTags(rv.Index(i), p, pos)
		}
	case reflect.Struct:
		fields := fieldsOf(rv.Type())
		for _, f := range fields {
			if p, ok := rv.Field(f.index).Interface().(Pos); ok && p.Line != 0 {
				pos = p
			}
		}
		for _, f := range fields {
			if f.key == "" {
				continue
			}
			fv, fpath := rv.Field(f.index), joinPath(path, f.key)
			if f.check != "" {
				ok, err := checkValue(f.check, fv)
				if err != nil {
					panic(fmt.Sprintf("config: check tag of %s: %v", fpath, err))
				}
				if !ok {
					v.add(pos, fpath, checkMessage(f))
				}
			}
			v.checkTags(fv, fpath, pos)
		}
	}
}

// database checks the kind and DSN of the source or the target.
func (v *validator) database(path string, pos Pos, kind string, dsn Secret) {
	switch {
	case kind == "":
		v.add(pos, path+".kind", "required (mysql or postgres)")
	case !slices.Contains(kinds, kind):
		v.add(pos, path+".kind", "unknown kind"+quoteUnlessEnv(v.fromEnv, path+".kind", " ", kind)+" (known: mysql, postgres)")
	}
	raw := dsn.Value()
	if strings.TrimSpace(raw) == "" {
		v.add(pos, path+".dsn", "required")
		return
	}
	if n := schemeLen(raw); n > 0 && slices.Contains(kinds, kind) {
		if !slices.Contains(dsnSchemes[kind], strings.ToLower(raw[:n-3])) {
			v.add(pos, path+".dsn", fmt.Sprintf("the URL scheme does not fit kind %s (write %s://...)", kind, kind))
		}
	}
	if msg := dsnShape(kind, raw); msg != "" {
		v.add(pos, path+".dsn", msg)
	}
}

// dsnShape says what is wrong with the form of a PostgreSQL DSN that is
// neither a URL nor key=value pairs, or "". Such a DSN cannot be redacted,
// and pgx's parse error echoes it whole, password included (it hides only
// a password=... pair), so the message quotes no part of it. A URL that
// does not parse is left to the driver, whose error shows it with its
// password hidden and says what is wrong (a port, an escape). MySQL DSNs
// are parsed, and their errors said as silently, by internal/mysqlurl.
func dsnShape(kind, dsn string) string {
	if kind != KindPostgres || schemeLen(dsn) > 0 {
		return ""
	}
	if _, ok := redactKeyValue(dsn); !ok {
		return "is neither a postgres:// URL nor key=value pairs (host=h user=u dbname=d); " +
			"the text is not shown: it may hold a password"
	}
	return ""
}

func (v *validator) source(s *Source) {
	v.database("source", s.Pos, s.Kind, s.DSN)
	if len(s.Tables) == 0 {
		v.add(s.Pos, "source.tables", "must list at least one table")
	}
	first := map[string]int{}
	for i, t := range s.Tables {
		p := fmt.Sprintf("source.tables[%d]", i)
		pos := s.Pos
		if i < len(s.TablesPos) {
			pos = s.TablesPos[i]
		}
		if !validTable(t, false) {
			v.add(pos, p, `must be "schema.table"`+v.got(p, t))
		} else if j, dup := first[t]; dup {
			v.add(pos, p, fmt.Sprintf("duplicate of source.tables[%d]", j))
		} else {
			first[t] = i
		}
	}
	if p := "source.postgres.slot"; !slotRE.MatchString(s.Postgres.Slot) {
		v.add(s.Pos, p, "must be 1 to 63 lower-case letters, digits or _"+v.got(p, s.Postgres.Slot))
	}
}

func (v *validator) kafka(k *Kafka) {
	for i, b := range k.Brokers {
		if p := fmt.Sprintf("kafka.brokers[%d]", i); b == "" || strings.ContainsAny(b, " \t\n,") {
			v.add(Pos{}, p, "must be host:port"+v.got(p, b))
		}
	}
	if t := k.TLS; t != nil && (t.CertFile == "") != (t.KeyFile == "") {
		v.add(Pos{}, "kafka.tls", "set both cert_file and key_file (a client certificate and its key), or neither")
	}
	if s := k.SASL; s != nil {
		if !slices.Contains(saslMechanisms, s.Mechanism) {
			v.add(s.Pos, "kafka.sasl.mechanism", "must be one of "+strings.Join(saslMechanisms, ", ")+v.got("kafka.sasl.mechanism", s.Mechanism))
		}
		if s.User == "" {
			v.add(s.Pos, "kafka.sasl.user", "required")
		}
		if s.Password.Value() == "" {
			v.add(s.Pos, "kafka.sasl.password", "required (or password_file: a file holding it)")
		}
	}
	if len(k.Brokers) == 0 && (k.TLS != nil || k.SASL != nil) {
		v.add(Pos{}, "kafka.brokers", "required with kafka.tls or kafka.sasl: the embedded broker takes neither")
	}
	if p := "kafka.topic_prefix"; !topicPrefixRE.MatchString(k.TopicPrefix) {
		v.add(Pos{}, p, "must be letters, digits, '.', '_' or '-'"+v.got(p, k.TopicPrefix))
	}
	if p := "kafka.compression"; !slices.Contains(Compressions, k.Compression) {
		v.add(Pos{}, p, "must be one of "+strings.Join(Compressions, ", ")+v.got(p, k.Compression))
	}
	v.envelope(&k.Envelope)
}

// envelope checks kafka.envelope's values against Debezium's.
func (v *validator) envelope(e *Envelope) {
	for _, o := range []struct {
		key, value string
		allowed    []string
	}{
		{"decimal.handling.mode", e.DecimalHandling, []string{"string", "double", "precise"}},
		{"time.precision.mode", e.TimePrecision, []string{"adaptive", "adaptive_time_microseconds", "connect"}},
		{"tombstones.on.delete", e.TombstonesOnDel, []string{"true", "false"}},
		{"schemas.enable", e.SchemasEnable, []string{"true", "false"}},
	} {
		if p := "kafka.envelope." + o.key; !slices.Contains(o.allowed, o.value) {
			v.add(Pos{}, p, "must be one of "+strings.Join(o.allowed, ", ")+v.got(p, o.value))
		}
	}
}

func (v *validator) mappings() {
	c := v.c
	names := map[string]int{}
	for i, m := range c.Mappings {
		p := fmt.Sprintf("mappings[%d]", i)
		switch {
		case m.From == "":
			v.add(m.Pos, p+".from", "required: the source table to read")
		case !slices.Contains(c.Source.Tables, m.From):
			v.add(m.Pos, p+".from", "must be one of source.tables"+v.got(p+".from", m.From))
		}
		switch j, dup := names[m.Name]; {
		case m.Name == "" && m.From != "":
			v.add(m.Pos, p+".name", "must not be empty")
		case dup:
			v.add(m.Pos, p+".name", fmt.Sprintf("duplicate mapping name%s (first in mappings[%d]); set name to tell them apart",
				quoteUnlessEnv(v.fromEnv, p+".name", " ", m.Name), j))
		case m.Name != "":
			names[m.Name] = i
		}
		if len(m.To) == 0 {
			v.add(m.Pos, p+".to", "must list at least one target table")
		}
		if m.Cohort != nil && strings.TrimSpace(m.Cohort.Text) == "" {
			v.add(orPos(m.Cohort.Pos, m.Pos), p+".cohort", "must not be empty: name the column that holds the row's cohort, such as row.merchant_id")
		}
		for j, o := range m.To {
			op := fmt.Sprintf("%s.to[%d]", p, j)
			v.output(op, o)
			if o.Cohort != nil && m.Cohort == nil {
				v.add(orPos(o.Cohort.Pos, o.Pos), op+".cohort", "the mapping has no cohort: set mappings[].cohort (the source row's cohort column) too, or remove this one")
			}
		}
		v.tolerances(Pos{}, p+".tolerate", m.Tolerate)
		for _, ct := range m.TolerateColumns {
			cp := joinPath(p+".tolerate_columns", ct.Column)
			v.tolerances(Pos{}, cp, ct.Rules)
			if !slices.ContainsFunc(m.To, func(o Output) bool {
				table, col, ok := strings.Cut(ct.Column, o.Table+".")
				return ok && table == "" && slices.ContainsFunc(o.Columns, func(c Column) bool { return c.Name == col })
			}) {
				v.add(ct.Pos, cp, "is not <to table>.<column> of a column this mapping writes")
			}
		}
		v.rules(p+".rules", m)
		if m.Inverse != nil {
			if len(m.Inverse.Columns) == 0 {
				v.add(m.Pos, p+".inverse.columns", "must list at least one column")
			}
			v.columns(p+".inverse.columns", m.Inverse.Columns, m.Pos)
			for _, c := range m.Inverse.Ignore {
				if slices.ContainsFunc(m.Inverse.Columns, func(col Column) bool { return col.Name == c }) {
					v.add(m.Pos, p+".inverse.ignore", fmt.Sprintf("%q is both computed and ignored", c))
				}
			}
		}
	}
}

func (v *validator) output(p string, o Output) {
	switch {
	case o.Table == "":
		v.add(o.Pos, p+".table", "required: the target table to write")
	case !validTable(o.Table, true):
		v.add(o.Pos, p+".table", `must be "schema.table" or "table"`+v.got(p+".table", o.Table))
	}
	if len(o.Columns) == 0 {
		v.add(o.Pos, p+".columns", "must list at least one column")
	}
	cols := v.columns(p+".columns", o.Columns, o.Pos)
	if len(o.Key) == 0 {
		v.add(o.Pos, p+".key", "must list at least one column")
	}
	first := map[string]int{}
	for i, k := range o.Key {
		kp := fmt.Sprintf("%s.key[%d]", p, i)
		if j, dup := first[k]; dup {
			v.add(o.Pos, kp, fmt.Sprintf("duplicate of key[%d]", j))
			continue
		}
		first[k] = i
		switch {
		case k == "":
			v.add(o.Pos, kp, "must not be empty")
		case len(o.Columns) > 0 && !cols[k]:
			v.add(o.Pos, kp, "must be one of the columns of this output"+v.got(kp, k))
		}
	}
	if !slices.Contains(modes, o.Mode) {
		v.add(o.Pos, p+".mode", "unknown mode"+quoteUnlessEnv(v.fromEnv, p+".mode", " ", o.Mode)+" (known: upsert, create_if_absent)")
	}
	v.onDelete(p, o, cols)
	if o.When != nil && strings.TrimSpace(o.When.Text) == "" {
		v.add(orPos(o.When.Pos, o.Pos), p+".when", "must not be empty")
	}
	if o.Cohort != nil && strings.TrimSpace(o.Cohort.Text) == "" {
		v.add(orPos(o.Cohort.Pos, o.Pos), p+".cohort", "must not be empty: name the column of this table that holds the row's cohort, such as row.merchant_id")
	}
}

// cutover checks the cutover section, when present.
func (v *validator) cutover(c *Cutover) {
	if c == nil {
		return
	}
	if p := "cutover.guard"; !slices.Contains(guards, c.Guard) {
		v.add(c.Pos, p, "unknown guard"+quoteUnlessEnv(v.fromEnv, p, " ", c.Guard)+" (known: report, reject)")
	}
}

// onDelete checks an output's on_delete: a known action, and for clear a
// column besides the key to clear.
func (v *validator) onDelete(p string, o Output, cols map[string]bool) {
	p += ".on_delete"
	switch {
	case !slices.Contains(onDeletes, o.OnDelete):
		v.add(o.Pos, p, "unknown on_delete"+quoteUnlessEnv(v.fromEnv, p, " ", o.OnDelete)+" (known: delete, clear)")
	case o.OnDelete == OnDeleteClear && len(cols) > 0 && !slices.ContainsFunc(o.Columns, func(c Column) bool { return !slices.Contains(o.Key, c.Name) }):
		v.add(o.Pos, p, "clear needs a column besides the key to set to NULL (this output writes only its key: use delete)")
	}
}

// columns checks a column list and returns the set of its names.
func (v *validator) columns(p string, cols []Column, fallback Pos) map[string]bool {
	names := map[string]bool{}
	for _, col := range cols {
		cp := joinPath(p, col.Name)
		pos := orPos(col.Expr.Pos, fallback)
		switch {
		case col.Name == "":
			v.add(pos, cp, "column name must not be empty")
		case names[col.Name]:
			v.add(pos, cp, "duplicate column")
		}
		names[col.Name] = true
		if strings.TrimSpace(col.Expr.Text) == "" {
			v.add(pos, cp, "expression must not be empty")
		}
	}
	return names
}

// tolerances checks a list of reconcile tolerances at path.
func (v *validator) tolerances(pos Pos, path string, rules []Tolerance) {
	first := map[Tolerance]int{}
	for i, t := range rules {
		p := fmt.Sprintf("%s[%d]", path, i)
		if j, dup := first[t]; dup {
			v.add(pos, p, fmt.Sprintf("duplicate of %s[%d]", path, j))
			continue
		}
		first[t] = i
		if !slices.Contains(tolerances, t) {
			known := make([]string, len(tolerances))
			for k, tol := range tolerances {
				known[k] = string(tol)
			}
			v.add(pos, p, "unknown tolerance"+quoteUnlessEnv(v.fromEnv, p, " ", string(t))+" (known: "+strings.Join(known, ", ")+")")
		}
	}
}

func (v *validator) reconcile(r *Reconcile) {
	v.tolerances(Pos{}, "reconcile.tolerate", r.Tolerate)
	names := map[string]int{}
	for i, ch := range r.Checks {
		p := fmt.Sprintf("reconcile.checks[%d]", i)
		switch j, dup := names[ch.Name]; {
		case ch.Name == "":
			v.add(ch.Pos, p+".name", "required")
		case dup:
			v.add(ch.Pos, p+".name", fmt.Sprintf("duplicate check name%s (first in reconcile.checks[%d])",
				quoteUnlessEnv(v.fromEnv, p+".name", " ", ch.Name), j))
		default:
			names[ch.Name] = i
		}
		if strings.TrimSpace(ch.Source) == "" {
			v.add(ch.Pos, p+".source", "required: a query on the source returning one number")
		}
		if strings.TrimSpace(ch.Target) == "" {
			v.add(ch.Pos, p+".target", "required: a query on the target returning one number")
		}
	}
}

// validTable reports whether t is "schema.table" with both parts non-empty,
// or, when bareOK, also a bare "table".
func validTable(t string, bareOK bool) bool {
	parts := strings.Split(t, ".")
	if len(parts) == 1 && !bareOK || len(parts) > 2 {
		return false
	}
	for _, p := range parts {
		if strings.TrimSpace(p) == "" {
			return false
		}
	}
	return true
}

// validListen reports whether l is host:port with a numeric port.
func validListen(l string) bool {
	_, port, err := net.SplitHostPort(l)
	if err != nil {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n >= 0 && n <= 65535
}

func orPos(p, fallback Pos) Pos {
	if p.Line == 0 {
		return fallback
	}
	return p
}
