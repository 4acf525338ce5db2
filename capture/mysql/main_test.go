package mysql_test

import (
	"os"
	"testing"

	"github.com/tandemcdc/tandem/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }
