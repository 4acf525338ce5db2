// Package config reads tandem.yaml: the source and target databases, the
// Kafka transport, the mappings from source rows to target rows (CEL
// expressions), and the reconcile, backfill and HTTP settings.
//
// Parse is strict and complete. Unknown keys, duplicate keys, values of the
// wrong type, unset ${VAR} references and rule violations (an unknown kind,
// a mapping from a table the source does not capture, a key column no
// expression computes...) are all reported together, each as an *Error that
// names the file, line and column and the path of the offending value
// ("tandem.yaml:12:5: mappings[0].to[1].key: must list at least one column").
// Defaults are applied for absent keys, so every command works on a Config
// whose fields are all set.
//
// Each key is declared once, as a tagged field of Config or of a struct
// inside it (`yaml:"chunk_rows" default:"5000" check:">0"`; tags.go lists
// the tags): one walker over the YAML nodes decodes any tagged struct, and
// Default, SetDefaults and Validate read the same tags. The rules that tie
// keys together are written out in validate.go.
//
// ${VAR} is expanded from the environment after YAML parsing, in every
// scalar value (never in keys), so secrets with any characters can be passed
// without quoting them for YAML; $$ is a literal $. Inside a flow collection
// ([...] or {...}) the reference itself must be quoted ("${VAR}"), since YAML
// reads { there as the start of a mapping. DSNs are trimmed of surrounding
// white space and held as Secret, whose every printed form (fmt, slog, JSON)
// hides the password; error messages never contain a DSN or a value that
// came from the environment.
//
// Every secret key (a Secret or a Password field) also has a _file form
// (dsn_file, password_file) whose value is the path of a file holding the
// secret, as Kubernetes mounts Secrets: read by Parse, trimmed, treated
// as a value from the environment, and exclusive with the inline form.
// A Password (kafka.sasl.password) is hidden whole when printed, where a
// Secret shows a DSN with only its password hidden.
//
// config is a leaf: it imports nothing from the project. The cmd verbs call
// Load, then hand the sections to the packages they configure (capture,
// kafka, transform, sink, backfill, reconcile). Positions (Pos, Expr.Pos)
// stay attached so that later errors, such as a CEL expression that does not
// compile, can name the file, line and column too.
package config
