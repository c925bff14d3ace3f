package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/engine"
	"github.com/linkaud/linkaud/web"
)

// workspaceArg is the workspace directory of the command running, for the
// hints of refusals ("" before a workspace is named).
var workspaceArg string

// storeOptions are the state options of every command: Pebble's fatal
// errors (a write-ahead log write failing on a full disk) end the process
// with one line and exit 2, not a panic's stack trace.
func storeOptions(log *slog.Logger) diff.Options {
	return diff.Options{Logger: log, Fatal: fatalState}
}

func fatalState(err error) {
	fmt.Fprintf(os.Stderr, "linkaud: the state can no longer be written (%v); linkaud stopped, keeping what was committed before; free space or fix the directory, then start again\n", oneLine(err))
	os.Exit(exitInfra)
}

// stateHint is what to do about damaged state.
func stateHint() string {
	ws := workspaceArg
	if ws == "" {
		ws = "DIR"
	}
	return fmt.Sprintf("check it with `linkaud state %s verify`, restore a backup with `linkaud state %s restore BACKUP`, or salvage memberships and events with `linkaud state %s export OUT`", ws, ws, ws)
}

// refusal turns the state's refusals into one line with what to do, exit
// 2; it returns nil when err is not one.
func refusal(err error) *exitError {
	switch {
	case err == nil:
		return nil
	case diff.IsCorrupt(err):
		var ce *diff.CorruptionError
		var re *diff.RollbackError
		msg := oneLine(err)
		switch {
		case errors.As(err, &re):
			msg = re.Error()
		case errors.As(err, &ce):
			msg = ce.Error()
		}
		return &exitError{code: exitInfra, err: fmt.Errorf("%s; %s", msg, stateHint())}
	case errors.Is(err, diff.ErrUnwritable), errors.Is(err, diff.ErrDiskFull):
		return &exitError{code: exitInfra, err: errors.New(oneLine(err))}
	}
	return nil
}

// oneLine is err's first line.
func oneLine(err error) string {
	msg := err.Error()
	for i, c := range msg {
		if c == '\n' {
			return msg[:i]
		}
	}
	return msg
}

// explainLocked adds what to do when the state directory is locked by
// another process: Pebble allows one process per directory, so while a
// worker runs, the CLI's commands that write the state (audiences enable,
// run, …) cannot open it; the worker's HTTP API does those things instead.
// Read-only commands (audiences list, deadletters list, state verify|
// backup|export) read a snapshot and need none of this.
func explainLocked(err error) error {
	if err == nil || !errors.Is(err, diff.ErrLocked) {
		return err
	}
	return fmt.Errorf("%w\nthe state directory is in use by another linkaud process; if a worker is running, use its HTTP API instead (e.g. curl -X POST -H \"Authorization: Bearer $%s\" http://127.0.0.1:8080/audiences/NAME/enable)", err, web.TokenEnv)
}

// stateError classifies a failure to open the state: another process (a
// worker) holding it is the user's to resolve (exit 1, with what to do);
// damage and I/O errors are refusals (exit 2, one line); anything else is
// an infrastructure failure.
func stateError(err error) error {
	var cc *engine.ColumnCheckError
	if errors.As(err, &cc) {
		// The workspace does not fit the warehouse: what check
		// --warehouse prints.
		fmt.Fprintln(os.Stderr, err)
		return silentExit(exitUser)
	}
	if r := refusal(err); r != nil {
		return r
	}
	if ex := explainLocked(err); ex != err {
		return userError(ex)
	}
	return infraError(err)
}

// boundExit makes sure a command stops within bound of SIGTERM or SIGINT,
// whatever it is blocked in (opening a state, a warehouse that ignores
// cancellation): past it, the process exits 2. The command's own handling
// (a cancelled context) runs meanwhile. It returns a function to call when
// the command is done.
func boundExit(bound time.Duration, log *slog.Logger) (done func()) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	finished := make(chan struct{})
	go func() {
		select {
		case <-sig:
		case <-finished:
			return
		}
		t := time.NewTimer(bound)
		defer t.Stop()
		select {
		case <-t.C:
			log.Error("forced exit: the command did not stop in time after the signal", "bound", bound.String())
			os.Exit(exitInfra)
		case <-finished:
		}
	}()
	return func() {
		signal.Stop(sig)
		close(finished)
	}
}
