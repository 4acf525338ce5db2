package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/tandemcdc/tandem/internal/config"
)

// ClientOpts are the options every client tandem opens to the configured
// brokers takes: kafka.tls and kafka.sasl. The embedded broker takes
// neither; call it only with kafka.brokers set. Its errors name the file
// or key at fault, never a password.
func ClientOpts(k config.Kafka) ([]kgo.Opt, error) {
	var opts []kgo.Opt
	if k.TLS != nil {
		tc, err := TLSConfig(*k.TLS)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if s := k.SASL; s != nil {
		switch s.Mechanism {
		case config.SASLPlain:
			opts = append(opts, kgo.SASL(plain.Auth{User: s.User, Pass: s.Password.Value()}.AsMechanism()))
		case config.SASLScramSHA256:
			opts = append(opts, kgo.SASL(scram.Auth{User: s.User, Pass: s.Password.Value()}.AsSha256Mechanism()))
		case config.SASLScramSHA512:
			opts = append(opts, kgo.SASL(scram.Auth{User: s.User, Pass: s.Password.Value()}.AsSha512Mechanism()))
		default:
			return nil, fmt.Errorf("kafka.sasl.mechanism %q: not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512", s.Mechanism)
		}
	}
	return opts, nil
}

// TLSConfig reads the files of kafka.tls into a client TLS configuration
// (TLS 1.2 or later).
func TLSConfig(t config.KafkaTLS) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // off unless configured, for tests
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read kafka.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka.tls.ca_file %s: no PEM certificate in it", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load kafka.tls.cert_file %s and key_file %s: %w", t.CertFile, t.KeyFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// AuthRefusedError is Ping's error when the brokers answered and refused
// kafka.sasl's credentials: an authentication failure, or the connection
// closed during the SASL exchange (the way some brokers, kfake among them,
// refuse a wrong password). A configuration to correct, not an outage to
// wait out; check it with errors.As. Its message never holds a password.
type AuthRefusedError struct {
	Mechanism string // kafka.sasl.mechanism
	User      string // kafka.sasl.user
	Err       error  // what the client got
}

func (e *AuthRefusedError) Error() string {
	return e.Err.Error() + " (the broker refused the SASL authentication or closed the connection during it: check kafka.sasl's user, password and mechanism)"
}

// Unwrap returns what the client got.
func (e *AuthRefusedError) Unwrap() error { return e.Err }

// saslReads counts a client's failed reads of responses: those of the SASL
// exchange (SaslHandshake, SaslAuthenticate) and the others. Its hook is
// called from the client's connection goroutines.
type saslReads struct{ sasl, other atomic.Int32 }

// OnBrokerRead implements kgo.HookBrokerRead.
func (r *saslReads) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	switch {
	case err == nil:
	case key == kmsg.SASLHandshake.Int16() || key == kmsg.SASLAuthenticate.Int16():
		r.sasl.Add(1)
	default:
		r.other.Add(1)
	}
}

// Ping connects to seeds with opts (ClientOpts) and asks a broker for its
// metadata, trying each request twice at most, so that a wrong password or
// certificate is said at once rather than retried for minutes. Its error
// says how tandem connected (TLS, the SASL mechanism and user) and what to
// check, never a password. Brokers that refuse kafka.sasl's credentials
// give an *AuthRefusedError: an authentication failure, or connections
// closed (EOF) in the SASL exchange and nowhere else, where a broker going
// down closes them at any step.
func Ping(ctx context.Context, k config.Kafka, opts []kgo.Opt) error {
	reads := &saslReads{}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(k.Brokers...), kgo.RequestRetries(1), kgo.WithHooks(reads)}, opts...)...)
	if err != nil {
		return fmt.Errorf("connect to kafka: %w", err)
	}
	defer cl.Close()
	err = cl.Ping(ctx)
	if err == nil {
		return nil
	}
	how := "plaintext"
	if k.TLS != nil {
		how = "TLS"
	}
	if s := k.SASL; s != nil {
		how += fmt.Sprintf(", SASL %s as user %q", s.Mechanism, s.User)
	}
	closed := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
	switch {
	case k.SASL != nil && (errors.Is(err, kerr.SaslAuthenticationFailed) || closed && reads.sasl.Load() > 0 && reads.other.Load() == 0):
		err = &AuthRefusedError{Mechanism: k.SASL.Mechanism, User: k.SASL.User, Err: err}
	case k.TLS == nil && closed:
		err = fmt.Errorf("%w (the broker closed the connection: does it expect TLS (kafka.tls) or SASL (kafka.sasl)?)", err)
	}
	return fmt.Errorf("connect to kafka brokers %s (%s): %w", strings.Join(k.Brokers, ","), how, err)
}
