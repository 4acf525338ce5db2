package sinktest

import (
	"testing"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/sink"
)

// rejectedDDL has a column of each kind a row's values can break.
const rejectedDDL = `CREATE TABLE strict (id BIGINT PRIMARY KEY, name VARCHAR(5), qty SMALLINT,
	must TEXT NOT NULL, positive INT CHECK (positive > 0));
CREATE TABLE required (id BIGINT PRIMARY KEY, v TEXT, must TEXT NOT NULL);
CREATE TABLE parents (id BIGINT PRIMARY KEY);
CREATE TABLE children (id BIGINT PRIMARY KEY, parent_id BIGINT, FOREIGN KEY (parent_id) REFERENCES parents (id))`

// testRejected: an error a row's own values cause (too long, out of range,
// not a number, NULL into NOT NULL, a CHECK) is sink.Rejected and writes
// nothing; one of the table or of other rows (a NOT NULL column the write
// leaves out, a foreign-key violation) is not. (A unique violation on
// another index than the key is not a rejection either, but MySQL's
// upsert does not raise it: ON DUPLICATE KEY UPDATE updates that row.)
func testRejected(t *testing.T, h Harness) {
	tg := h.NewTarget(t, rejectedDDL)
	s := tg.Sink()
	apply(t, s, sink.Checkpoint{}, write(change.WriteUpsert, "strict", Row{"id": int64(1), "must": "x"}, "id"))
	good := write(change.WriteUpsert, "strict", Row{"id": int64(2), "must": "y"}, "id")
	strict := func(r Row) change.Write {
		r["id"] = int64(3)
		if _, ok := r["must"]; !ok {
			r["must"] = "z"
		}
		return write(change.WriteUpsert, "strict", r, "id")
	}
	tests := []struct {
		name     string
		w        change.Write
		rejected bool
	}{
		{"too long", strict(Row{"name": "abcdef"}), true},
		{"out of range", strict(Row{"qty": int64(1 << 20)}), true},
		{"not a number", strict(Row{"qty": "many"}), true},
		{"null into not null", strict(Row{"must": nil}), true},
		{"check", strict(Row{"positive": int64(-1)}), true},
		{"not null column left out", write(change.WriteUpsert, "required", Row{"id": int64(1), "v": "a"}, "id"), false},
		{"foreign key", write(change.WriteUpsert, "children", Row{"id": int64(1), "parent_id": int64(9)}, "id"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cp := checkpoint("g-"+tt.name, "e", sink.Offset{Topic: "t", Partition: 0, From: 0, Next: 2})
			err := applyErr(t, s, cp, good, tt.w)
			if got := sink.Rejected(err); got != tt.rejected {
				t.Errorf("Rejected(%v) = %v, want %v", err, got, tt.rejected)
			}
			wantOffsets(t, s, cp.Group, "e", nil)
		})
	}
	wantRows(t, tg, "SELECT id FROM strict ORDER BY id", []Row{{"id": "1"}})
}
