package engine

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/linkaud/linkaud/dsl"
)

// RequestReload asks the worker to load the workspace again (SIGHUP, a
// file change); reason is logged. Requests arriving while one is pending
// are merged. It does nothing without WorkerOptions.Load.
func (w *Worker) RequestReload(reason string) {
	if w.opts.Load == nil {
		return
	}
	select {
	case w.reloads <- reason:
	default:
	}
}

func (w *Worker) reloadLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case reason := <-w.reloads:
			w.reloadFromDisk(ctx, reason)
		}
	}
}

// reloadFromDisk loads the workspace and applies it; a workspace with
// errors is rejected, its diagnostics logged, and the old definitions
// stay.
func (w *Worker) reloadFromDisk(ctx context.Context, reason string) {
	ws, diags := w.opts.Load()
	for _, d := range diags {
		// Diagnostics quote the source, never an env("…") value.
		if d.Severity == dsl.Warning {
			w.log.Warn("workspace diagnostic", "diagnostic", d.Error())
		} else {
			w.log.Error("workspace diagnostic", "diagnostic", d.Error())
		}
	}
	if diags.HasErrors() || ws == nil {
		w.log.Error("reload rejected: the workspace has errors; keeping the previous definitions",
			"reason", reason, "errors", countErrors(diags))
		w.reloaded(false)
		return
	}
	if err := w.Reload(ctx, ws); err != nil {
		var cc *ColumnCheckError
		if errors.As(err, &cc) {
			for _, d := range cc.Diags {
				w.log.Error("workspace diagnostic", "diagnostic", d.Error())
			}
			w.log.Error("reload rejected: the workspace does not fit the warehouse; keeping the previous definitions",
				"reason", reason, "errors", len(cc.Diags))
		} else {
			w.log.Error("reload failed; keeping the previous definitions", "reason", reason, "error", err)
		}
		w.reloaded(false)
		return
	}
	w.reloaded(true)
}

func countErrors(ds dsl.Diagnostics) int {
	n := 0
	for _, d := range ds {
		if d.Severity == dsl.Error {
			n++
		}
	}
	return n
}

func (w *Worker) reloaded(ok bool) {
	for _, h := range hooksOf[HookReload](w.e.opts.Hooks) {
		h.OnReload(ok)
	}
}

// Reload replaces the worker's workspace by ws (checked): new audiences
// are scheduled, deleted ones are no longer run (their state is kept),
// edited ones run their new version from their next run on, which diffs
// against the old membership; a changed schedule applies at once, counted
// from the last run. Cycles already running finish on the old definition.
// The state directory cannot change while the worker runs.
func (w *Worker) Reload(ctx context.Context, ws *dsl.Workspace) error {
	w.reloadMu.Lock()
	defer w.reloadMu.Unlock()
	w.mu.Lock()
	old, stopping := w.ws, w.stopping
	w.mu.Unlock()
	if stopping {
		return ErrStopping
	}
	if old == nil {
		old = w.e.Workspace()
	}
	if filepath.Clean(ws.StateDir) != filepath.Clean(old.StateDir) {
		return fmt.Errorf("the state directory changed from %s to %s: restart the worker to use another state", old.StateDir, ws.StateDir)
	}
	if err := w.e.Reload(ctx, ws); err != nil {
		return err
	}
	states, err := w.states()
	if err != nil {
		return err
	}
	var added, removed, changed []string
	now := w.opts.Now()
	w.mu.Lock()
	w.ws = ws
	for name, s := range w.auds {
		if ws.Audience(name) == nil {
			removed = append(removed, name)
			if s.queued {
				w.dequeue(s)
			}
			delete(w.auds, name)
		}
	}
	for _, a := range ws.Audiences {
		s := w.auds[a.Name]
		if s == nil {
			st := states[a.Name]
			s = &sched{aud: a, enabled: st.Enabled, lastStart: st.LastRun}
			w.auds[a.Name] = s
			added = append(added, a.Name)
		} else if s.aud.Version != a.Version {
			changed = append(changed, a.Name)
		}
		if a.Enabled != nil && s.enabled != *a.Enabled {
			// The file decides; the engine's Reload wrote it to the state.
			s.enabled = *a.Enabled
			if !s.enabled && s.queued {
				w.dequeue(s)
			}
		}
		s.aud = a
		// A run already due stays queued (it will run the new
		// definition); otherwise the schedule, maybe edited, is
		// counted again from the last run.
		if !s.queued {
			w.plan(s, now)
		}
	}
	select {
	case <-w.started:
		// Run started the delivery loops: follow the destinations.
		w.syncDestinations(ws)
	default:
	}
	w.queueChanged()
	w.mu.Unlock()
	slices.Sort(added)
	slices.Sort(removed)
	slices.Sort(changed)
	w.log.Info("workspace reloaded", "audiences", len(ws.Audiences), "added", added, "removed", removed, "changed", changed)
	w.nudge()
	return nil
}

// watch reloads the workspace when one of its .la files changes, once
// ReloadDebounce passed without another change: editors write a file in
// several steps (truncate, write; or write a temporary file and rename).
func (w *Worker) watch(ctx context.Context, wg *sync.WaitGroup) error {
	dir := w.e.Workspace().Dir
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	// The directory, not the files: a rename over a file replaces the
	// inode a file watch would follow.
	if err := fw.Add(dir); err != nil {
		fw.Close()
		return err
	}
	wg.Go(func() {
		defer fw.Close()
		var debounce <-chan time.Time
		var timer *time.Timer
		var last string
		for {
			select {
			case <-ctx.Done():
				if timer != nil {
					timer.Stop()
				}
				return
			case ev, ok := <-fw.Events:
				if !ok {
					return
				}
				if filepath.Ext(ev.Name) != ".la" || !ev.Has(fsnotify.Write|fsnotify.Create|fsnotify.Remove|fsnotify.Rename) {
					continue
				}
				last = filepath.Base(ev.Name)
				if timer == nil {
					timer = time.NewTimer(w.opts.ReloadDebounce)
				} else {
					timer.Reset(w.opts.ReloadDebounce)
				}
				debounce = timer.C
			case err, ok := <-fw.Errors:
				if !ok {
					return
				}
				if errors.Is(err, fsnotify.ErrEventOverflow) {
					// Changes were lost: reload to be sure.
					w.RequestReload("file watch overflow")
					continue
				}
				w.log.Warn("watching the workspace", "error", err)
			case <-debounce:
				debounce = nil
				w.RequestReload("file changed: " + last)
			}
		}
	})
	w.log.Info("watching the workspace for changes", "dir", dir)
	return nil
}
