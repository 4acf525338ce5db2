package reconcile

import (
	"os"
	"testing"

	"github.com/tandemcdc/tandem/internal/testenv"
)

// TestMain stops the servers TestStoredCases_AreWhatTheServersStore
// starts.
func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }
