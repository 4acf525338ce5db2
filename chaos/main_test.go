package chaos

import (
	"flag"
	"fmt"
	"os"
	"time"

	"testing"

	"github.com/tandemcdc/tandem/internal/tandemtest"
)

// seedFlag picks the random kill moments; 0 (the default) takes one from
// the clock. Every scenario that draws one logs it: rerun a failure with
// go test ./chaos -run NAME -chaos.seed N.
var seedFlag = flag.Uint64("chaos.seed", 0, "seed of the random fault moments (0: from the clock)")

// parallel is how many scenarios run at once unless -test.parallel is
// given: they spend most of their time waiting out a fault (a 90 s stall,
// a 20 s outage) at a modest write rate, so go test's default (the CPU
// count, 2 on CI) would run them nearly one after the other.
const parallel = 16

func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		if err := flag.Set("test.parallel", fmt.Sprint(parallel)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	if *seedFlag == 0 {
		*seedFlag = uint64(time.Now().UnixNano())
	}
	os.Exit(tandemtest.Main(m))
}
