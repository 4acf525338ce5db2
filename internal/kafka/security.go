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

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
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

// Ping connects to seeds with opts (ClientOpts) and asks a broker for its
// metadata, trying each request twice at most, so that a wrong password or
// certificate is said at once rather than retried for minutes. Its error
// says how tandem connected (TLS, the SASL mechanism and user) and what to
// check, never a password.
func Ping(ctx context.Context, k config.Kafka, opts []kgo.Opt) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(k.Brokers...), kgo.RequestRetries(1)}, opts...)...)
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
	hint := ""
	switch {
	case k.SASL != nil && (errors.Is(err, io.EOF) || errors.Is(err, kerr.SaslAuthenticationFailed)):
		hint = " (the broker refused the SASL authentication or closed the connection during it: check kafka.sasl's user, password and mechanism)"
	case k.TLS == nil && errors.Is(err, io.EOF):
		hint = " (the broker closed the connection: does it expect TLS (kafka.tls) or SASL (kafka.sasl)?)"
	}
	return fmt.Errorf("connect to kafka brokers %s (%s): %w%s", strings.Join(k.Brokers, ","), how, err, hint)
}
