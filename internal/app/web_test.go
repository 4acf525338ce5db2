package app

import (
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/tandemcdc/tandem/internal/config"
)

func TestHTTP_WebConfigFileRequiresTheBasicAuthPassword(t *testing.T) {
	const pw = "metrics-pw-5e1d"
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webConfig := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(webConfig, []byte("basic_auth_users:\n  prometheus: "+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "tandem_test_up", Help: "1"}))
	srv, addr, err := listenHTTP(config.HTTP{Listen: "127.0.0.1:0", WebConfigFile: webConfig}, reg, &readiness{}, Roles{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })

	get := func(path, user, pass string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	got := map[string]int{}
	got["no credentials"], _ = get("/metrics", "", "")
	got["wrong password"], _ = get("/metrics", "prometheus", "nope")
	got["healthz without credentials"], _ = get("/healthz", "", "")
	code, body := get("/metrics", "prometheus", pw)
	got["the password"] = code
	want := map[string]int{"no credentials": 401, "wrong password": 401, "healthz without credentials": 401, "the password": 200}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("status codes (-want +got):\n%s", diff)
	}
	if !strings.Contains(body, "tandem_test_up") {
		t.Errorf("/metrics with the password does not show the metrics:\n%s", body)
	}
}

func TestHTTP_ABadWebConfigFileIsAnErrorNamingIt(t *testing.T) {
	webConfig := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(webConfig, []byte("tls_server_config:\n  cert_file: missing.pem\n  key_file: missing.key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := listenHTTP(config.HTTP{Listen: "127.0.0.1:0", WebConfigFile: webConfig}, prometheus.NewRegistry(), &readiness{}, Roles{}, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "http.web_config_file "+webConfig) {
		t.Fatalf("listenHTTP error = %v, want one naming http.web_config_file %s", err, webConfig)
	}
}
