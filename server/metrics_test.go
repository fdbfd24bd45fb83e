package server

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// series is one gathered sample: its labels and value (a counter's value or
// a histogram's count).
type series struct {
	labels map[string]string
	value  float64
}

func gather(t *testing.T, reg *prometheus.Registry, name string) []series {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []series
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			s := series{labels: map[string]string{}}
			for _, l := range m.GetLabel() {
				s.labels[l.GetName()] = l.GetValue()
			}
			if m.GetCounter() != nil {
				s.value = m.GetCounter().GetValue()
			} else {
				s.value = float64(m.GetHistogram().GetSampleCount())
			}
			out = append(out, s)
		}
	}
	return out
}

func TestMetricsRouteLabels(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	logger, _ := newTestLogger(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /things/{id}", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.PathValue("id")) })
	h := Wrap(mux, Options{Logger: logger, Metrics: m})
	for _, target := range []string{"/things/1", "/things/2", "/no/such/route"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", target, nil))
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("BREW", "/things/3", nil))

	requests := gather(t, reg, "sso_http_requests_total")
	want := map[[3]string]float64{
		{"GET /things/{id}", "GET", "200"}: 2,
		{"unmatched", "GET", "404"}:        1,
		{"unmatched", "other", "405"}:      1,
	}
	if len(requests) != len(want) {
		t.Errorf("got %d request series, want %d: %v", len(requests), len(want), requests)
	}
	for _, s := range requests {
		key := [3]string{s.labels["route"], s.labels["method"], s.labels["code"]}
		if s.value != want[key] {
			t.Errorf("requests%v = %v, want %v", key, s.value, want[key])
		}
	}

	var routeObservations float64
	for _, s := range gather(t, reg, "sso_http_request_duration_seconds") {
		if s.labels["route"] == "GET /things/{id}" {
			routeObservations += s.value
		}
	}
	if routeObservations != 2 {
		t.Errorf("duration histogram counted %v requests on GET /things/{id}, want 2", routeObservations)
	}
}

func TestMetricsHandler(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	db := sql.OpenDB(stubConnector{})
	defer db.Close()
	m.RegisterDBStats("main", db)
	logger, _ := newTestLogger(t)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	h := Wrap(mux, Options{Logger: logger, Metrics: m})
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/metrics", nil))

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		"go_goroutines",
		`sso_http_requests_total{code="200",method="GET",route="GET /metrics"} 1`,
		"sso_http_request_duration_seconds_bucket",
		`go_sql_open_connections{db_name="main"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// stubConnector lets sql.OpenDB build a pool without a driver; the stats
// collector never connects.
type stubConnector struct{}

func (stubConnector) Connect(context.Context) (driver.Conn, error) {
	return nil, errors.New("stub: no connections")
}
func (stubConnector) Driver() driver.Driver { return nil }
