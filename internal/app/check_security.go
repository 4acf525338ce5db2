package app

import (
	"context"
	"time"

	"github.com/prometheus/exporter-toolkit/web"

	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/kafka"
	"github.com/tandemcdc/tandem/internal/preflight"
)

// kafkaPingTimeout bounds how long check waits for the brokers.
const kafkaPingTimeout = 10 * time.Second

// transportProblems checks what the secure transport settings need: the
// files of kafka.tls readable and valid, the brokers reachable and
// accepting kafka.sasl's credentials, and http.web_config_file valid.
func transportProblems(ctx context.Context, cfg *config.Config) []preflight.Problem {
	var ps []preflight.Problem
	if len(cfg.Kafka.Brokers) > 0 {
		opts, err := kafka.ClientOpts(cfg.Kafka)
		if err != nil {
			ps = append(ps, preflight.Problem{Severity: preflight.Fail, Object: "kafka.tls", What: err.Error(),
				Fix: "point kafka.tls's ca_file, cert_file and key_file at readable PEM files (a CA certificate, the client certificate and its key)"})
		} else {
			pctx, cancel := context.WithTimeout(ctx, kafkaPingTimeout)
			defer cancel()
			if err := kafka.Ping(pctx, cfg.Kafka, opts); err != nil {
				ps = append(ps, preflight.Problem{Severity: preflight.Fail, Object: BrokersObject, What: err.Error(),
					Fix:         "make kafka.brokers reachable; with TLS, kafka.tls.ca_file must hold the CA the brokers' certificates chain to; with SASL, kafka.sasl's mechanism, user and password must be the broker's",
					Unreachable: BrokersUnreachable(err)})
			}
		}
	}
	if f := cfg.HTTP.WebConfigFile; f != "" {
		if err := web.Validate(f); err != nil {
			ps = append(ps, preflight.Problem{Severity: preflight.Fail, Object: "http.web_config_file", What: "read " + f + ": " + err.Error(),
				Fix: "fix the Prometheus exporter web configuration (tls_server_config cert_file and key_file, basic_auth_users with bcrypt hashes)"})
		}
	}
	return ps
}
