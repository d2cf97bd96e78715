// Package uilog sends the log of hardway's library packages to a Packer
// build's output: one slog record is one line of the build's messages.
package uilog

import (
	"bytes"
	"context"
	"log/slog"
	"sync"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// New returns a logger that writes each record to ui as a text line of
// key=value attributes, without the time (Packer stamps its own); warnings
// and errors go through ui.Error with their level, the rest through
// ui.Message without it.
func New(ui packersdk.Ui) *slog.Logger {
	w := &lineWriter{ui: ui}
	return slog.New(&handler{Handler: slog.NewTextHandler(w, &slog.HandlerOptions{ReplaceAttr: trim}), w: w})
}

// trim drops the time, and the level of records below warnings.
func trim(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch {
	case a.Key == slog.TimeKey:
		return slog.Attr{}
	case a.Key == slog.LevelKey && a.Value.Any().(slog.Level) < slog.LevelWarn:
		return slog.Attr{}
	}
	return a
}

// handler routes a record's line by its level.
type handler struct {
	slog.Handler
	w *lineWriter
}

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	h.w.mu.Lock()
	defer h.w.mu.Unlock()
	h.w.err = r.Level >= slog.LevelWarn
	return h.Handler.Handle(ctx, r)
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	return &handler{Handler: h.Handler.WithAttrs(as), w: h.w}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{Handler: h.Handler.WithGroup(name), w: h.w}
}

// lineWriter hands each written line to the ui. The text handler writes
// one whole record per Write, under the lock Handle holds.
type lineWriter struct {
	mu  sync.Mutex
	ui  packersdk.Ui
	err bool
}

func (l *lineWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimRight(p, "\n"))
	if l.err {
		l.ui.Error(line)
	} else {
		l.ui.Message(line)
	}
	return len(p), nil
}
