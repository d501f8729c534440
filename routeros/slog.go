package routeros

import (
	"context"
	"log/slog"
	"strings"

	"github.com/rs/zerolog"
)

// zerologHandler routes go-routeros's slog records into our one logger,
// so its debug output (the sentences it sends) shows with the router's
// fields at -log-level debug instead of on its own stdout handler.
type zerologHandler struct {
	log   zerolog.Logger
	attrs []slog.Attr
}

func (h zerologHandler) Enabled(_ context.Context, level slog.Level) bool {
	return h.log.GetLevel() <= zerologLevel(level)
}

func (h zerologHandler) Handle(_ context.Context, r slog.Record) error {
	ev := h.log.WithLevel(zerologLevel(r.Level))
	if ev == nil {
		return nil
	}
	add := func(a slog.Attr) bool {
		ev = ev.Str(a.Key, redactWords(a.Value.Resolve()))
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	ev.Msg("go-routeros: " + r.Message)
	return nil
}

func (h zerologHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return zerologHandler{log: h.log, attrs: append(append([]slog.Attr(nil), h.attrs...), attrs...)}
}

// WithGroup flattens: go-routeros uses no groups, and a prefix on keys is
// all a group would add.
func (h zerologHandler) WithGroup(string) slog.Handler { return h }

func zerologLevel(l slog.Level) zerolog.Level {
	switch {
	case l < slog.LevelInfo:
		return zerolog.DebugLevel
	case l < slog.LevelWarn:
		return zerolog.InfoLevel
	case l < slog.LevelError:
		return zerolog.WarnLevel
	default:
		return zerolog.ErrorLevel
	}
}

// redactWords hides the value of every =password= word: go-routeros
// logs the login sentence ([]string words) like any other at debug level.
func redactWords(v slog.Value) string {
	words, ok := v.Any().([]string)
	if !ok {
		return v.String()
	}
	out := make([]string, len(words))
	for i, w := range words {
		if strings.HasPrefix(w, "=password=") {
			w = "=password=[redacted]"
		}
		out[i] = w
	}
	return strings.Join(out, " ")
}
