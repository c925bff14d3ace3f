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
	"syscall"
	"time"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/engine"
	"github.com/linkaud/linkaud/executor"
	"github.com/linkaud/linkaud/internal/metrics"
	"github.com/linkaud/linkaud/sinks"
	"github.com/linkaud/linkaud/web"
)

func init() {
	register("worker", "Run the daemon: compute enabled audiences on their schedules, deliver their events, serve the console at /, /healthz, /metrics and /audiences.", &workerCmd{})
}

type workerCmd struct {
	Dir             string        `arg:"" help:"Workspace directory (its .la files)." predictor:"dir"`
	Listen          string        `help:"Address of the HTTP API (host:port; port 0 picks a free one). Loopback by default: put a proxy in front to expose it." default:"127.0.0.1:8080"`
	MaxConcurrent   int           `help:"Most compute cycles running at once; further due runs queue, earliest first." default:"5"`
	ShutdownTimeout time.Duration `help:"On SIGTERM/SIGINT: running cycles may finish within two thirds of it (then they are cancelled, changing nothing), deliveries flush in the rest; then the worker exits 0." default:"30s"`
	DeliverInterval time.Duration `help:"How often a destination with events left in its outbox is retried." default:"5s"`
	Watch           bool          `help:"Reload when a .la file changes (also on SIGHUP)." default:"true" negatable:""`
	MaxDepth        int           `help:"Deepest path allowed, counting profile (default: the graph's max_depth, else 6)."`
	State           string        `help:"State directory, instead of the workspace's state setting: a shard's own (each --shard needs one)." type:"path" placeholder:"DIR"`
	Shard           string        `help:"Run shard K of N workers (K counts from 0, e.g. a StatefulSet pod's ordinal): only the audiences rendezvous hashing gives this shard; each shard needs a state directory of its own." placeholder:"K/N"`
	MemoryLimit     byteSize      `help:"Memory budget of the process, e.g. 512MB: divided between DuckDB, the state and the pipeline (default: the state block's memory_limit, else a quarter of RAM, 512MB to 4GB)." placeholder:"SIZE"`
}

func (c *workerCmd) Run(g *Globals) error {
	switch {
	case c.MaxConcurrent < 1:
		return userError(errors.New("--max-concurrent must be at least 1"))
	case c.ShutdownTimeout <= 0:
		return userError(errors.New("--shutdown-timeout must be positive"))
	case c.DeliverInterval <= 0:
		return userError(errors.New("--deliver-interval must be positive"))
	}
	shard := engine.Shard{K: 0, N: 1}
	if c.Shard != "" {
		var err error
		if shard, err = engine.ParseShard(c.Shard); err != nil {
			return userError(fmt.Errorf("--shard: %w", err))
		}
	}
	log := g.Logger()
	dopts := dsl.Options{MaxDepth: c.MaxDepth}
	ws, err := loadWorkspace(c.Dir, dopts)
	if err != nil {
		return err
	}
	// withState gives a loaded workspace the --state directory.
	withState := func(ws *dsl.Workspace) *dsl.Workspace {
		if c.State == "" || ws == nil {
			return ws
		}
		cp := *ws
		cp.StateDir = c.State
		return &cp
	}
	ws = withState(ws)
	if shard.N > 1 {
		all := len(ws.Audiences)
		ws = shard.Apply(ws)
		log.Info("shard", "shard", shard.String(), "audiences", len(ws.Audiences), "of", all)
	}
	// The token is read once and never logged; only whether it is set.
	token := os.Getenv(web.TokenEnv)

	ctx, stopSignals := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stopSignals()

	// The hard bound: whatever hangs (opening the state or the warehouse,
	// a warehouse ignoring cancellation, a reload stuck opening one,
	// closing the state), the process is gone StopGrace and a few seconds
	// after --shutdown-timeout.
	exited := make(chan struct{})
	defer close(exited)
	go func() {
		<-ctx.Done()
		// A second signal now kills the process the default way.
		stopSignals()
		t := time.NewTimer(c.ShutdownTimeout + engine.StopGrace + 5*time.Second)
		defer t.Stop()
		select {
		case <-t.C:
			log.Error("forced exit: the worker did not stop in time")
			os.Exit(exitInfra)
		case <-exited:
		}
	}()

	m := metrics.New()
	rates := web.NewRates()
	e, err := engine.Open(ctx, ws, engine.Options{
		Logger: log,
		Store:  storeOptions(log),
		Hooks:  []sinks.Hook{m, rates},
		// Refuse a workspace that does not fit the warehouse, at
		// start and at every reload.
		CheckColumns: true,
		// A connection per concurrent cycle; a max_connections
		// setting in the workspace still wins.
		Warehouse:   executor.Options{MaxConns: c.MaxConcurrent},
		MemoryLimit: int64(c.MemoryLimit),
	})
	if err != nil {
		// Another process holding the state is the user's to resolve;
		// damage and I/O errors are refusals with what to do.
		return stateError(err)
	}
	applyMemoryPlan(g, e.Memory())
	w, err := engine.NewWorker(e, engine.WorkerOptions{
		MaxConcurrent:   c.MaxConcurrent,
		DeliverInterval: c.DeliverInterval,
		StopTimeout:     c.ShutdownTimeout,
		Load: func() (*dsl.Workspace, dsl.Diagnostics) {
			ws, diags := dsl.Load(c.Dir, dopts)
			if ws != nil {
				ws = shard.Apply(withState(ws))
			}
			return ws, diags
		},
		Watch:  c.Watch,
		Logger: log,
	})
	if err != nil {
		e.Close()
		return infraError(err)
	}
	m.Observe(e.Store(), w.Destinations)
	m.ObserveHistory(e.Store())

	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		e.Close()
		return infraError(fmt.Errorf("listening on %s: %w", c.Listen, err))
	}
	addr := ln.Addr().String()
	srv := &http.Server{
		Handler: web.New(w, web.Options{Token: token, Metrics: m.Handler(), Logger: log, Rates: rates,
			// Beyond loopback the console's pages need a login too.
			RequireLogin: !isLoopback(ln.Addr())}),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	if !isLoopback(ln.Addr()) {
		log.Warn("the HTTP API listens beyond loopback; anyone reaching it can read audience statuses", "addr", addr)
	}
	log.Info("listening", "addr", addr, "mutations", map[bool]string{true: "enabled (bearer token)", false: "disabled (" + web.TokenEnv + " unset)"}[token != ""])
	// Scripts and tests read the bound address (--listen with port 0)
	// from this line.
	fmt.Fprintf(os.Stdout, "linkaud worker: listening on http://%s\n", addr)

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			w.RequestReload("SIGHUP")
		}
	}()

	runErr := make(chan error, 1)
	go func() { runErr <- w.Run(ctx) }()
	select {
	case err = <-runErr:
	case err = <-serveErr:
		// The API is how the worker is operated: without it, stop.
		log.Error("the HTTP server failed; stopping", "error", err)
		stopSignals()
		<-runErr
		e.Close()
		return infraError(fmt.Errorf("serving HTTP on %s: %w", addr, err))
	}
	stopSignals()
	if errors.Is(err, engine.ErrStopTimeout) {
		// Something ignored cancellation: do not wait for it, and do not
		// close the state under it; Pebble's log and the differ's
		// recovery keep the state consistent for the next start.
		log.Error("forced exit: a cycle or a delivery did not stop within the grace period", "grace", engine.StopGrace.String())
		return infraError(err)
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = srv.Shutdown(shutCtx)
	cancel()
	if cerr := e.Close(); cerr != nil {
		log.Error("closing the state", "error", cerr)
		return infraError(cerr)
	}
	if err != nil {
		return infraError(err)
	}
	log.Info("worker exited")
	return nil
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}
