package deploy

import (
	"flag"
	"os"
	"regexp"
	"strconv"
	"testing"

	"github.com/tandemcdc/tandem/internal/testenv"
)

// TestMain stops the test PostgreSQL servers (internal/testenv) the tests
// start.
func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(testenv.Run(m))
}

// imageUser is the USER of the Dockerfile, which the pods must run as.
func imageUser(t *testing.T) int64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^USER (\d+):(\d+)\s*$`).FindSubmatch(readFile(t, "../Dockerfile"))
	if m == nil {
		t.Fatal("../Dockerfile has no USER uid:gid line")
	}
	uid, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return uid
}
