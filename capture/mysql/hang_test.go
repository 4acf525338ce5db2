package mysql_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/capture/capturetest"
	"github.com/tandemcdc/tandem/capture/mysql"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// A binlog stream whose connections hang (a stalled firewall, NAT or proxy:
// the sockets open, nothing forwarded) is noticed within Config.Timeout:
// Stream returns saying so and naming the server's address. The next
// Stream takes the capture lease again, although the hung lease's session
// still holds it on the server (it ends that session), and reads the rows
// written meanwhile, whole, from the acknowledged position.
func TestStream_AStalledBinlogStreamIsNoticedAndReopened(t *testing.T) {
	dsn := testenv.NewMariaDBDatabase(t)
	db := sourceDB(t, dsn)
	mustExec(t, db, "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40), price DECIMAL(10,2))")
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.NewFaultProxy(t, u.Host)
	u.Host = proxy.Addr()
	const timeout = time.Second
	src, err := mysql.New(mysql.Config{DSN: u.String(), ServerID: newServerID(), Tables: []change.Table{{Schema: db, Name: "items"}},
		Store: &capturetest.MemPositions{}, StoreKey: "test", Timeout: timeout,
		SaveInterval: 50 * time.Millisecond, IdleAckInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	if err := src.Setup(t.Context()); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	s := stream(t, src)
	mustExec(t, db, "INSERT INTO items VALUES (1, 'one', 1.50)")
	if got := short(s.events(t, 1)); got[0].After["id"] != int64(1) {
		t.Fatalf("first event %v, want row 1", got)
	}

	proxy.Stall()
	stalled := time.Now()
	mustExec(t, db, "INSERT INTO items VALUES (2, 'two', 2.00)",
		"UPDATE items SET name = 'uno', price = 1.25 WHERE id = 1",
		"INSERT INTO items VALUES (3, 'three', 3.33)")
	err = s.Wait()
	took := time.Since(stalled)
	if err == nil || !strings.Contains(err.Error(), "seems hung") || !strings.Contains(err.Error(), proxy.Addr()) {
		t.Fatalf("Stream after the stall = %v, want the hang said, naming %s", err, proxy.Addr())
	}
	if took > timeout+5*time.Second {
		t.Errorf("the hang was noticed after %s, want about Config.Timeout (%s)", took, timeout)
	}
	t.Logf("stall noticed after %s: %v", took.Round(time.Millisecond), err)

	// Reopened through new connections (the stalled ones stay stalled):
	// the lease is taken again and the rows written meanwhile arrive.
	s = stream(t, src)
	tbl := db + ".items"
	want := []shortEvent{
		{Op: "c", Table: tbl, Key: []string{"id"}, After: change.Row{"id": int64(2), "name": "two", "price": "2.00"}},
		{Op: "u", Table: tbl, Key: []string{"id"},
			Before: change.Row{"id": int64(1), "name": "one", "price": "1.50"}, After: change.Row{"id": int64(1), "name": "uno", "price": "1.25"}},
		{Op: "c", Table: tbl, Key: []string{"id"}, After: change.Row{"id": int64(3), "name": "three", "price": "3.33"}},
	}
	got := short(s.events(t, 3))
	t.Logf("rows written during the stall arrived %s after it", time.Since(stalled).Round(time.Millisecond))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events after the reopen (-want +got):\n%s", diff)
	}
	s.stop(t)
}
