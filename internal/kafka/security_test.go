package kafka

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/preflight"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// TestPing_ClassifiesARefusedAuthenticationApartFromAClosedPort: brokers
// that refuse kafka.sasl's credentials (kfake closes the connection in the
// SASL exchange, with no error code) give an *AuthRefusedError naming the
// mechanism and user and no password; a port that closes every connection
// before any SASL step (closed or reset) gives an error that is no
// AuthRefusedError and says the brokers cannot be reached: an outage to
// wait out.
func TestPing_ClassifiesARefusedAuthenticationApartFromAClosedPort(t *testing.T) {
	const pw, wrong = "scram-pw-7f3a", "wrong-pw-91c2"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(),
		kfake.Superuser(config.SASLScramSHA256, "tandem", pw), kfake.Superuser(config.SASLPlain, "tandem", pw))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	closing := closingPort(t)

	tests := []struct {
		name        string
		brokers     []string
		mechanism   string
		password    string
		wantRefused bool // an *AuthRefusedError
		wantDown    bool // cannot be reached (preflight.IsUnreachable)
	}{
		{"right SCRAM password", cluster.ListenAddrs(), config.SASLScramSHA256, pw, false, false},
		{"wrong SCRAM password", cluster.ListenAddrs(), config.SASLScramSHA256, wrong, true, true},
		{"wrong PLAIN password", cluster.ListenAddrs(), config.SASLPlain, wrong, true, true},
		{"a port that closes every connection", []string{closing}, config.SASLScramSHA256, pw, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := config.Kafka{Brokers: tt.brokers,
				SASL: &config.KafkaSASL{Mechanism: tt.mechanism, User: "tandem", Password: config.Password(tt.password)}}
			opts, err := ClientOpts(k)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			err = Ping(ctx, k, opts)
			if (err != nil) != (tt.wantRefused || tt.wantDown) {
				t.Fatalf("Ping = %v, want an error: %v", err, tt.wantRefused || tt.wantDown)
			}
			if err == nil {
				return
			}
			var refused *AuthRefusedError
			if got := errors.As(err, &refused); got != tt.wantRefused {
				t.Errorf("Ping = %v: an AuthRefusedError: %v, want %v", err, got, tt.wantRefused)
			}
			if tt.wantDown && !preflight.IsUnreachable(err) {
				t.Errorf("Ping = %v: not a server that cannot be reached", err)
			}
			if refused != nil {
				if refused.Mechanism != tt.mechanism || refused.User != "tandem" {
					t.Errorf("AuthRefusedError names %s as %q, want %s as \"tandem\"", refused.Mechanism, refused.User, tt.mechanism)
				}
				if !strings.Contains(err.Error(), "check kafka.sasl's user, password and mechanism") {
					t.Errorf("Ping = %v: does not say what to check", err)
				}
			}
			if !strings.Contains(err.Error(), "SASL "+tt.mechanism+" as user \"tandem\"") {
				t.Errorf("Ping = %v: does not say how it connected", err)
			}
			if strings.Contains(err.Error(), pw) || strings.Contains(err.Error(), wrong) {
				t.Errorf("Ping's error shows a password")
			}
		})
	}
}

// closingPort is a loopback port that closes every connection once it has
// read the client's first request (a broker going down) until the end of
// t: the client reads EOF before any SASL step, as it would from a broker
// refusing a wrong password during the SASL exchange.
func closingPort(t *testing.T) string {
	return testenv.ServeTCP(t, func(c net.Conn) {
		_, _ = c.Read(make([]byte, 512)) // so that the close is an EOF, not a reset
		c.Close()
	})
}
