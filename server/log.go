package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
)

// NewLogger returns a logger writing to w at the given level (debug, info,
// warn or error) in the given format (text or json). Every record logged
// with a context that carries a request ID (see WithRequestID) gets a
// top-level request_id attribute, so the lines of one request can be found
// together.
func NewLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	switch level {
	case "debug":
		lv = slog.LevelDebug
	case "info":
		lv = slog.LevelInfo
	case "warn":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	switch format {
	case "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, fmt.Errorf("log format %q: want text or json", format)
	}
	return slog.New(newRequestIDHandler(h)), nil
}

type requestIDKey struct{}

// WithRequestID returns a copy of ctx that carries the request ID id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request ID ctx carries, or "" if it carries none.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// requestIDHandler adds request_id to records logged with a context that
// carries one. The attribute must stay at the top level even when the logger
// has groups (logger.WithGroup("oauth")), where an attribute added to the
// record would land inside the group. So the handler remembers the calls made
// after the first WithGroup and, for such loggers, replays them on top of the
// ungrouped handler extended with request_id.
type requestIDHandler struct {
	top     slog.Handler                      // the handler before any group was opened
	grouped []func(slog.Handler) slog.Handler // WithGroup/WithAttrs calls since the first group
	h       slog.Handler                      // top with grouped applied: what logs
}

func newRequestIDHandler(h slog.Handler) *requestIDHandler {
	return &requestIDHandler{top: h, h: h}
}

// Enabled reports whether the wrapped handler logs at level l.
func (h *requestIDHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.h.Enabled(ctx, l)
}

// Handle logs r, with request_id when ctx carries one.
func (h *requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	id := RequestID(ctx)
	if id == "" {
		return h.h.Handle(ctx, r)
	}
	attr := slog.String("request_id", id)
	if len(h.grouped) == 0 {
		r = r.Clone() // the caller's record must not change
		r.AddAttrs(attr)
		return h.h.Handle(ctx, r)
	}
	out := h.top.WithAttrs([]slog.Attr{attr})
	for _, apply := range h.grouped {
		out = apply(out)
	}
	return out.Handle(ctx, r)
}

// WithAttrs returns a handler whose records also carry attrs.
func (h *requestIDHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	if len(h.grouped) == 0 {
		top := h.top.WithAttrs(attrs)
		return &requestIDHandler{top: top, h: top}
	}
	return h.with(func(s slog.Handler) slog.Handler { return s.WithAttrs(attrs) })
}

// WithGroup returns a handler that nests later attributes under name.
func (h *requestIDHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return h.with(func(s slog.Handler) slog.Handler { return s.WithGroup(name) })
}

func (h *requestIDHandler) with(apply func(slog.Handler) slog.Handler) *requestIDHandler {
	grouped := make([]func(slog.Handler) slog.Handler, len(h.grouped), len(h.grouped)+1)
	copy(grouped, h.grouped)
	return &requestIDHandler{top: h.top, grouped: append(grouped, apply), h: apply(h.h)}
}
