package reconcile

import (
	"context"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/pgtext"
)

// kindedSource is a Source that summarises in kinds, recording the kind
// each summary was asked in. Only its hashing is called.
type kindedSource struct {
	Source
	kinds []pgtext.HashKind
	asked *[]pgtext.HashKind
}

func (s kindedSource) HashKinds() []pgtext.HashKind { return s.kinds }

func (s kindedSource) HashChunkKind(_ context.Context, kind pgtext.HashKind, _ *change.Schema, _ []string, _ []string, _ int) (pgtext.RowsHash, []string, error) {
	*s.asked = append(*s.asked, kind)
	return pgtext.RowsHash{}, nil, nil
}

// kindedTarget is kindedSource's target.
type kindedTarget struct {
	RowReader
	kinds []pgtext.HashKind
	asked *[]pgtext.HashKind
}

func (t kindedTarget) HashKinds() []pgtext.HashKind { return t.kinds }

func (t kindedTarget) HashRangeKind(_ context.Context, kind pgtext.HashKind, _, _ string, _ []string, _, _ any) (pgtext.RowsHash, error) {
	*t.asked = append(*t.asked, kind)
	return pgtext.RowsHash{}, nil
}

// plainSource and plainTarget summarise in pgtext.HashText only, without
// saying so (HashChunk, HashRange).
type plainSource struct {
	Source
	asked *[]pgtext.HashKind
}

func (s plainSource) HashChunk(context.Context, *change.Schema, []string, []string, int) (pgtext.RowsHash, []string, error) {
	*s.asked = append(*s.asked, pgtext.HashText)
	return pgtext.RowsHash{}, nil, nil
}

type plainTarget struct {
	RowReader
	asked *[]pgtext.HashKind
}

func (t plainTarget) HashRange(context.Context, string, string, []string, any, any) (pgtext.RowsHash, error) {
	*t.asked = append(*t.asked, pgtext.HashText)
	return pgtext.RowsHash{}, nil
}

// TestHashers_PickTheFirstKindOfTheSourcesThatTheTargetComputes checks
// the negotiation of summaries: PostgreSQL on both sides keeps the
// faster hashtextextended, a MariaDB side makes both use md5, a hasher
// that lists no kinds computes hashtextextended, and sides that share no
// kind (or a side with no summaries) leave the rows to be compared.
func TestHashers_PickTheFirstKindOfTheSourcesThatTheTargetComputes(t *testing.T) {
	pgKinds := []pgtext.HashKind{pgtext.HashText, pgtext.HashMD5}
	myKinds := []pgtext.HashKind{pgtext.HashMD5}
	type asked struct{ Source, Target []pgtext.HashKind }
	for _, tc := range []struct {
		name     string
		src      func(*[]pgtext.HashKind) Source
		tgt      func(*[]pgtext.HashKind) RowReader
		want     asked
		noHasher bool
	}{
		{"postgres to postgres", kinded(pgKinds), kindedTgt(pgKinds), asked{[]pgtext.HashKind{pgtext.HashText}, []pgtext.HashKind{pgtext.HashText}}, false},
		{"mariadb to postgres", kinded(myKinds), kindedTgt(pgKinds), asked{myKinds, myKinds}, false},
		{"postgres to mariadb", kinded(pgKinds), kindedTgt(myKinds), asked{myKinds, myKinds}, false},
		{"mariadb to mariadb", kinded(myKinds), kindedTgt(myKinds), asked{myKinds, myKinds}, false},
		{"kinds unsaid to postgres", plain, kindedTgt(pgKinds), asked{[]pgtext.HashKind{pgtext.HashText}, []pgtext.HashKind{pgtext.HashText}}, false},
		{"postgres to kinds unsaid", kinded(pgKinds), plainTgt, asked{[]pgtext.HashKind{pgtext.HashText}, []pgtext.HashKind{pgtext.HashText}}, false},
		{"mariadb to kinds unsaid", kinded(myKinds), plainTgt, asked{}, true},
		{"kinds unsaid to mariadb", plain, kindedTgt(myKinds), asked{}, true},
		{"no summaries to postgres", func(*[]pgtext.HashKind) Source { return nil }, kindedTgt(pgKinds), asked{}, true},
		{"postgres to no summaries", kinded(pgKinds), func(*[]pgtext.HashKind) RowReader { return nil }, asked{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got asked
			sh, th := hashers(tc.src(&got.Source), tc.tgt(&got.Target))
			if (sh == nil || th == nil) != tc.noHasher || (sh == nil) != (th == nil) {
				t.Fatalf("hashers: source %v, target %v; want none: %v", sh, th, tc.noHasher)
			}
			if sh != nil {
				if _, _, err := sh.HashChunk(context.Background(), nil, nil, nil, 1); err != nil {
					t.Fatal(err)
				}
				if _, err := th.HashRange(context.Background(), "t", "id", nil, nil, nil); err != nil {
					t.Fatal(err)
				}
			}
			if diff := gocmp.Diff(tc.want, got); diff != "" {
				t.Errorf("kinds asked (-want +got):\n%s", diff)
			}
		})
	}
}

func kinded(kinds []pgtext.HashKind) func(*[]pgtext.HashKind) Source {
	return func(a *[]pgtext.HashKind) Source { return kindedSource{kinds: kinds, asked: a} }
}

func kindedTgt(kinds []pgtext.HashKind) func(*[]pgtext.HashKind) RowReader {
	return func(a *[]pgtext.HashKind) RowReader { return kindedTarget{kinds: kinds, asked: a} }
}

func plain(a *[]pgtext.HashKind) Source       { return plainSource{asked: a} }
func plainTgt(a *[]pgtext.HashKind) RowReader { return plainTarget{asked: a} }
