package main

import (
	"log/slog"
	"os"

	"golang.org/x/term"
)

// Logger builds the process's logger from the global flags: JSON when
// stderr is not a terminal (a daemon's logs go to a collector), text on a
// terminal. It also becomes slog's default, so libraries logging through
// slog.Default follow the flags.
func (g *Globals) Logger() *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(g.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	format := g.LogFormat
	if format == "auto" {
		format = "json"
		if term.IsTerminal(int(os.Stderr.Fd())) {
			format = "text"
		}
	}
	var h slog.Handler
	if format == "text" {
		h = slog.NewTextHandler(os.Stderr, opts)
	} else {
		h = slog.NewJSONHandler(os.Stderr, opts)
	}
	l := slog.New(h)
	slog.SetDefault(l)
	return l
}
