package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/web"
)

func init() {
	register("console", "Serve the console's pages read-only over a workspace's state, without running cycles (the worker serves the same pages, with actions, at /).", &consoleCmd{})
}

type consoleCmd struct {
	Dir     string        `arg:"" help:"Workspace directory (its .la files)." predictor:"dir"`
	Listen  string        `help:"Address to serve on (host:port; port 0 picks a free one). Loopback by default; beyond it every page needs a login, which a read-only console cannot give: put an authenticating proxy in front." default:"127.0.0.1:8081"`
	Refresh time.Duration `help:"How often the state is opened again, to follow a worker that holds it (while one does, each open reads a snapshot)." default:"5s"`
}

func (c *consoleCmd) Run(g *Globals) error {
	if c.Refresh <= 0 {
		return userError(errors.New("--refresh must be positive"))
	}
	log := g.Logger()
	st := &refreshingState{g: g, dir: c.Dir, every: c.Refresh}
	if _, err := st.open(); err != nil {
		return err
	}
	defer st.close()
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return infraError(fmt.Errorf("listening on %s: %w", c.Listen, err))
	}
	srv := &http.Server{
		Handler:           web.NewReadOnly(st, web.Options{Logger: log, RequireLogin: !isLoopback(ln.Addr())}),
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      30 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	fmt.Fprintf(os.Stdout, "linkaud console: listening on http://%s (read-only)\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return infraError(err)
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(shut)
	return nil
}

// refreshingState reopens the workspace and its state read-only when the
// last open is older than every, so that the pages follow a worker. The
// store replaced is closed at the next refresh, after requests that were
// reading it had every chance to finish.
type refreshingState struct {
	g     *Globals
	dir   string
	every time.Duration

	mu     sync.Mutex
	ws     *dsl.Workspace
	store  *diff.Store
	old    *diff.Store
	opened time.Time
}

func (s *refreshingState) open() (*dsl.Workspace, error) {
	ws, store, err := openState(s.g, s.dir, readState)
	if err != nil {
		return nil, err
	}
	if s.old != nil {
		s.old.Close()
	}
	s.old, s.ws, s.store, s.opened = s.store, ws, store, time.Now()
	return ws, nil
}

// Current implements web.State.
func (s *refreshingState) Current() (*dsl.Workspace, *diff.Store) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.opened) >= s.every {
		if _, err := s.open(); err != nil {
			// Keep serving what was read last; say why once per try.
			s.g.Logger().Warn("console: reopening the workspace or its state failed; showing the last one read", "error", err)
			s.opened = time.Now()
		}
	}
	return s.ws, s.store
}

func (s *refreshingState) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range []*diff.Store{s.old, s.store} {
		if st != nil {
			st.Close()
		}
	}
}
