package mysql

import (
	"context"
	"fmt"
	"strings"

	"github.com/tandemcdc/tandem/internal/mysqlurl"
	"github.com/tandemcdc/tandem/internal/pgtext"
)

// HashKinds implements reconcile.KindRangeHasher: the one summary MariaDB
// and MySQL compute as PostgreSQL does, pgtext.HashMD5.
func (s *Sink) HashKinds() []pgtext.HashKind { return []pgtext.HashKind{pgtext.HashMD5} }

// HashRangeKind implements reconcile.KindRangeHasher: it summarises on the
// server, in kind (pgtext.HashMD5 only), the rows of table whose
// one-column key is above after and at most upTo (nil: no bound on that
// side): the pgtext.RowsHash of the values of cols, in that order, equal
// to a source's summary of the same rows (capture/mysql or
// capture/postgres HashChunkKind), by mysqlurl.MD5Summary of
//
//	SELECT k, <mysqlurl.MD5RowText of c1, c2> AS r FROM t WHERE k > ? AND k <= ?
//
// after and upTo are converted as Apply converts values. Failures are
// *sink.Error.
func (s *Sink) HashRangeKind(ctx context.Context, kind pgtext.HashKind, table, key string, cols []string, after, upTo any) (pgtext.RowsHash, error) {
	var h pgtext.RowsHash
	if kind != pgtext.HashMD5 {
		return h, classified(table, fmt.Errorf("hash rows of %s: MariaDB and MySQL compute %s summaries, not %s", table, pgtext.HashMD5, kind))
	}
	t, err := s.readTable(ctx, table, []string{key}, cols)
	if err != nil {
		return h, classified(table, fmt.Errorf("hash rows of %s: %w", table, err))
	}
	types, err := s.columnTypes(ctx, table)
	if err != nil {
		return h, classified(table, fmt.Errorf("hash rows of %s: %w", table, err))
	}
	exprs, sqlTypes := make([]string, len(cols)), make([]string, len(cols))
	for i, c := range cols {
		exprs[i] = mysqlurl.QuoteIdent(c)
		var ok bool
		if sqlTypes[i], ok = types[c]; ok {
			continue
		}
		for name, typ := range types { // readTable found it, in another case
			if strings.EqualFold(name, c) {
				sqlTypes[i] = typ
			}
		}
	}
	k := mysqlurl.QuoteIdent(key)
	keyType, _ := t.column(key)
	var conds []string
	var args []any
	for _, b := range []struct {
		v  any
		op string
	}{{after, ">"}, {upTo, "<="}} {
		if b.v == nil {
			continue
		}
		v, err := argFor(keyType, b.v)
		if err != nil {
			return h, classified(table, fmt.Errorf("hash rows of %s: key bound: %w", table, err))
		}
		args = append(args, v)
		conds = append(conds, k+" "+b.op+" ?")
	}
	inner := "SELECT " + k + " AS k, " + mysqlurl.MD5RowText(exprs, sqlTypes) + " AS r FROM " + t.ident
	if len(conds) > 0 {
		inner += " WHERE " + strings.Join(conds, " AND ")
	}
	h, _, err = mysqlurl.MD5Summary(ctx, s.db, inner, args...)
	if err != nil {
		return h, classified(table, fmt.Errorf("hash rows of %s: %w", table, err))
	}
	return h, nil
}
