package server

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"testing/slogtest"
)

// newTestLogger returns a JSON logger at debug level and the buffer it writes to.
func newTestLogger(t *testing.T) (*slog.Logger, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	logger, err := NewLogger(&buf, "debug", "json")
	if err != nil {
		t.Fatal(err)
	}
	return logger, &buf
}

// logLines decodes one JSON object per line.
func logLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		lines = append(lines, m)
	}
	return lines
}

func TestNewLoggerOptions(t *testing.T) {
	tests := []struct {
		level, format string
		wantErr       bool
	}{
		{"debug", "text", false},
		{"info", "json", false},
		{"warn", "text", false},
		{"error", "json", false},
		{"verbose", "text", true},
		{"INFO", "text", true},
		{"info", "xml", true},
		{"", "", true},
	}
	for _, tt := range tests {
		_, err := NewLogger(&bytes.Buffer{}, tt.level, tt.format)
		if (err != nil) != tt.wantErr {
			t.Errorf("NewLogger(%q, %q) error = %v, want error %v", tt.level, tt.format, err, tt.wantErr)
		}
	}
}

func TestNewLoggerLevel(t *testing.T) {
	var buf bytes.Buffer
	logger, err := NewLogger(&buf, "warn", "text")
	if err != nil {
		t.Fatal(err)
	}
	logger.Info("quiet")
	logger.Warn("loud")
	if got := buf.String(); strings.Contains(got, "quiet") || !strings.Contains(got, "loud") {
		t.Errorf("warn logger wrote %q, want only the warning", got)
	}
}

func TestLoggerAddsRequestID(t *testing.T) {
	ctx := WithRequestID(context.Background(), "req-1")
	tests := []struct {
		name   string
		log    func(l *slog.Logger)
		check  func(line map[string]any) bool
		wantID bool
	}{
		{
			name:   "plain",
			log:    func(l *slog.Logger) { l.InfoContext(ctx, "m", "k", "v") },
			check:  func(m map[string]any) bool { return m["k"] == "v" },
			wantID: true,
		},
		{
			name: "attrs and groups keep request_id at the top",
			log: func(l *slog.Logger) {
				l.With("a", "1").WithGroup("g").With("b", "2").WithGroup("h").InfoContext(ctx, "m", "c", "3")
			},
			check: func(m map[string]any) bool {
				g, _ := m["g"].(map[string]any)
				h, _ := g["h"].(map[string]any)
				return m["a"] == "1" && g["b"] == "2" && h["c"] == "3" && g["request_id"] == nil
			},
			wantID: true,
		},
		{
			name:   "context without an ID",
			log:    func(l *slog.Logger) { l.WithGroup("g").InfoContext(context.Background(), "m", "k", "v") },
			check:  func(m map[string]any) bool { g, _ := m["g"].(map[string]any); return g["k"] == "v" },
			wantID: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logger, buf := newTestLogger(t)
			tt.log(logger)
			lines := logLines(t, buf)
			if len(lines) != 1 {
				t.Fatalf("got %d lines, want 1: %s", len(lines), buf)
			}
			id, has := lines[0]["request_id"]
			if has != tt.wantID || (tt.wantID && id != "req-1") {
				t.Errorf("request_id = %v (present %v), want present %v", id, has, tt.wantID)
			}
			if !tt.check(lines[0]) {
				t.Errorf("attributes misplaced: %s", buf)
			}
		})
	}
}

func TestRequestIDRoundTrip(t *testing.T) {
	if got := RequestID(context.Background()); got != "" {
		t.Errorf("RequestID(empty ctx) = %q, want empty", got)
	}
	if got := RequestID(WithRequestID(context.Background(), "abc")); got != "abc" {
		t.Errorf("RequestID = %q, want abc", got)
	}
}

// TestRequestIDHandlerConformance runs the standard library's handler
// checks, with and without a request ID in the context.
func TestRequestIDHandlerConformance(t *testing.T) {
	for _, id := range []string{"", "req-1"} {
		t.Run("id="+id, func(t *testing.T) {
			var buf bytes.Buffer
			newHandler := func(t *testing.T) slog.Handler {
				buf.Reset()
				return ctxHandler{h: newRequestIDHandler(slog.NewJSONHandler(&buf, nil)), id: id}
			}
			result := func(t *testing.T) map[string]any {
				var m map[string]any
				if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
					t.Fatalf("%q: %v", buf.Bytes(), err)
				}
				if id != "" && m["request_id"] != id {
					t.Errorf("request_id = %v, want %s", m["request_id"], id)
				}
				return m
			}
			slogtest.Run(t, newHandler, result)
		})
	}
}

// ctxHandler puts a request ID into the context of every record, as a
// request's logger calls do.
type ctxHandler struct {
	h  slog.Handler
	id string
}

func (c ctxHandler) Enabled(ctx context.Context, l slog.Level) bool { return c.h.Enabled(ctx, l) }
func (c ctxHandler) Handle(ctx context.Context, r slog.Record) error {
	if c.id != "" {
		ctx = WithRequestID(ctx, c.id)
	}
	return c.h.Handle(ctx, r)
}
func (c ctxHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return ctxHandler{h: c.h.WithAttrs(as), id: c.id}
}
func (c ctxHandler) WithGroup(name string) slog.Handler {
	return ctxHandler{h: c.h.WithGroup(name), id: c.id}
}
