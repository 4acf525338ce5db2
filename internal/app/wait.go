package app

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tandemcdc/tandem/internal/kafka"
	"github.com/tandemcdc/tandem/internal/poll"
	"github.com/tandemcdc/tandem/internal/preflight"
	"github.com/tandemcdc/tandem/internal/repeat"
)

// BrokersObject is the Object of Check's problems with the Kafka brokers.
const BrokersObject = "kafka"

// maxStartWait is the longest a starting role waits between two checks of
// a server it cannot reach.
const maxStartWait = 10 * time.Second

// waitForBrokers waits until the configured Kafka brokers answer (the
// embedded broker needs no wait). While they cannot be reached (refused,
// closed, no answer within kafkaPingTimeout) it checks again with backoff,
// at most maxStartWait apart, logging each distinct cause once with a
// count, /readyz failing with what it waits for and
// tandem_waiting_for_brokers at 1: a broker down or restarting is waited
// out, not an exit. Brokers that answer and refuse kafka.sasl's
// credentials (kafka.AuthRefusedError) end the wait with the error: a
// configuration to correct.
func (p *process) waitForBrokers(ctx context.Context) error {
	// Exported whatever the brokers (0 with the embedded one), so that
	// every process has the series the dashboard and alerts read.
	gauge := prometheus.NewGauge(prometheus.GaugeOpts{Name: "tandem_waiting_for_brokers",
		Help: "1 while the process waits at start for Kafka brokers it cannot reach (kafka.brokers)."})
	if err := p.reg.Register(gauge); err != nil {
		return err
	}
	if len(p.cfg.Kafka.Brokers) == 0 {
		return nil
	}
	opts, err := kafka.ClientOpts(p.cfg.Kafka)
	if err != nil {
		return err
	}
	failures := repeat.New(p.log, "waiting to start: cannot reach the kafka brokers; checking again", repeat.WithLevel(slog.LevelWarn))
	backoff := poll.NewBackoff()
	backoff.MaxInterval = maxStartWait
	for {
		pctx, cancel := context.WithTimeout(ctx, kafkaPingTimeout)
		err := kafka.Ping(pctx, p.cfg.Kafka, opts)
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !BrokersUnreachable(err) {
			return err
		}
		gauge.Set(1)
		why := err.Error()
		p.status.waiting.Store(&why)
		wait := backoff.NextBackOff()
		// One cause however the brokers' port fails (refused, reset,
		// closed, silent), as refuseWhenCheckFails has for the databases;
		// each line shows the attempt's own error.
		failures.FailOf("kafka brokers "+strings.Join(p.cfg.Kafka.Brokers, ",")+" cannot be reached", err,
			"retry_in", wait.Round(time.Millisecond))
		if err := poll.Sleep(ctx, wait); err != nil {
			return err
		}
	}
	gauge.Set(0)
	p.status.waiting.Store(nil)
	failures.OK()
	return nil
}

// BrokersUnreachable reports whether err, from kafka.Ping, says the
// brokers could not be reached (refused, closed, timed out): a condition
// to wait out. Brokers that refused kafka.sasl's credentials
// (*kafka.AuthRefusedError, closed connection or not) are not.
func BrokersUnreachable(err error) bool {
	var refused *kafka.AuthRefusedError
	return preflight.IsUnreachable(err) && !errors.As(err, &refused)
}
