package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
)

func init() {
	register("state", "Operate the state directory: DIR verify | backup OUT | restore IN | export OUT.", &stateCmd{})
}

type stateCmd struct {
	Dir stateDir `arg:""`
}

type stateDir struct {
	Dir string `arg:"" help:"Workspace directory (its state is the workspace's state setting), or a state directory itself (a backup)."`

	Verify  stVerifyCmd  `cmd:"" help:"Read every key and checksum; report what the state holds and anything damaged (exit 2 if so)."`
	Backup  stBackupCmd  `cmd:"" help:"Write a consistent copy of the state to OUT (a new directory); works while a worker runs."`
	Restore stRestoreCmd `cmd:"" help:"Replace the state with the backup IN; refuses while a worker holds the state."`
	Move    stMoveCmd    `cmd:"" help:"Move audiences' state (memberships, runs, outbox, dead letters) from DIR to the state directory TO: resharding (--shard)."`
	Export  stExportCmd  `cmd:"" help:"Write memberships, the outbox and dead letters as JSON lines into OUT, salvaging what reads from a damaged state."`
}

type stVerifyCmd struct{}

type stBackupCmd struct {
	Out string `arg:"" help:"Directory to create for the backup."`
}

type stRestoreCmd struct {
	In      string `arg:"" help:"Backup directory (made by state backup)."`
	Replace bool   `help:"Restore over an existing state, which is moved aside to STATE.replaced-TIME (never deleted)."`
}

type stExportCmd struct {
	Out string `arg:"" help:"Directory to write audiences.jsonl, memberships.jsonl, outbox.jsonl and deadletters.jsonl into."`
}

// resolveState finds the state directory DIR names: a workspace's, or DIR
// itself when it holds a state (Pebble's OPTIONS, the commit record) and no
// .la file.
func resolveState(dir string) (string, error) {
	las, _ := filepath.Glob(filepath.Join(dir, "*.la"))
	if len(las) == 0 {
		names, err := os.ReadDir(dir)
		if err != nil {
			return "", userError(err)
		}
		for _, n := range names {
			if n.Name() == diff.CommitRecordFile || strings.HasPrefix(n.Name(), "OPTIONS-") {
				workspaceArg = dir
				return dir, nil
			}
		}
		return "", userError(fmt.Errorf("%s is neither a workspace (no .la file) nor a state directory", dir))
	}
	ws, err := loadWorkspace(dir, dsl.Options{})
	if err != nil {
		return "", err
	}
	return ws.StateDir, nil
}

// openForTools opens the state read-only: the tools work while a worker
// runs (on a snapshot) and on a read-only directory.
func openForTools(g *Globals, dir string, salvage bool) (*diff.Store, string, error) {
	state, err := resolveState(dir)
	if err != nil {
		return nil, "", err
	}
	if _, err := os.Stat(state); err != nil {
		return nil, "", userError(fmt.Errorf("no state in %s: %w", state, err))
	}
	opts := storeOptions(g.Logger())
	opts.Salvage = salvage
	s, err := diff.OpenReadOnly(state, opts)
	if err != nil {
		return nil, state, stateError(err)
	}
	return s, state, nil
}

func (c *stVerifyCmd) Run(g *Globals, d *stateDir) error {
	s, state, err := openForTools(g, d.Dir, true)
	if err != nil {
		return err
	}
	defer s.Close()
	rep, err := s.Verify()
	if err != nil {
		return infraError(err)
	}
	fmt.Printf("%s: epoch %d; %s, %s, %s, %s\n", state, rep.Epoch, plural(rep.Audiences, "audience"),
		plural(rep.Members, "member"), plural(rep.Pending, "pending event"), plural(rep.DeadLetters, "dead letter"))
	var tables []string
	for _, t := range slices.Sorted(mapKeys(rep.Keys)) {
		tables = append(tables, fmt.Sprintf("%s %d", t, rep.Keys[t]))
	}
	fmt.Printf("keys read: %s\n", strings.Join(tables, ", "))
	for _, dmg := range rep.Damage {
		file := dmg.File
		if file == "" {
			file = "(a file)"
		}
		fmt.Printf("damaged: %s, from %s: %s\n", file, dmg.From, dmg.Err)
	}
	for _, p := range rep.Problems {
		fmt.Printf("problem: %s\n", p)
	}
	if !rep.OK() {
		return infraError(fmt.Errorf("%s does not verify (%d damaged ranges, %d problems); %s", state, len(rep.Damage), len(rep.Problems), stateHint()))
	}
	fmt.Println("ok")
	return nil
}

func (c *stBackupCmd) Run(g *Globals, d *stateDir) error {
	s, _, err := openForTools(g, d.Dir, false)
	if err != nil {
		return err
	}
	defer s.Close()
	rep, err := s.Backup(c.Out)
	if err != nil {
		return infraError(err)
	}
	fmt.Printf("backup of epoch %d written to %s: %s, %s, %s in %s\n", rep.Epoch, rep.Out,
		plural(rep.Audiences, "audience"), plural(rep.Pending, "pending event"), plural(rep.Bytes, "byte"), rep.Took.Round(1e6))
	return nil
}

func (c *stRestoreCmd) Run(g *Globals, d *stateDir) error {
	state, err := resolveState(d.Dir)
	if err != nil {
		return err
	}
	if abs(state) == abs(c.In) {
		return userError(errors.New("the backup and the state are the same directory"))
	}
	replaced, err := diff.Restore(c.In, state, diff.RestoreOptions{Options: storeOptions(g.Logger()), Replace: c.Replace})
	switch {
	case errors.Is(err, diff.ErrLocked):
		return userError(fmt.Errorf("%w (stop the worker first)", err))
	case err != nil && strings.Contains(err.Error(), "already holds a state"):
		return userError(fmt.Errorf("%w: pass --replace", err))
	case err != nil:
		return infraError(err)
	}
	if replaced != "" {
		fmt.Printf("the previous state was moved to %s\n", replaced)
	}
	fmt.Printf("restored %s from %s; the next run or worker start continues from it\n", state, c.In)
	return nil
}

func abs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return filepath.Clean(a)
}

func (c *stExportCmd) Run(g *Globals, d *stateDir) error {
	s, state, err := openForTools(g, d.Dir, true)
	if err != nil {
		return err
	}
	defer s.Close()
	rep, err := s.Export(c.Out)
	if err != nil {
		return infraError(err)
	}
	fmt.Printf("exported %s to %s: %s, %s, %s, %s\n", state, c.Out, plural(rep.Audiences, "audience"),
		plural(rep.Members, "member"), plural(rep.Pending, "pending event"), plural(rep.DeadLetters, "dead letter"))
	for _, dmg := range rep.Damage {
		fmt.Printf("skipped (damaged): %s, from %s: %s\n", dmg.File, dmg.From, dmg.Err)
	}
	if len(rep.Damage) > 0 {
		return infraError(fmt.Errorf("%d damaged ranges could not be read; what was readable is in %s", len(rep.Damage), c.Out))
	}
	return nil
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

type stMoveCmd struct {
	Audience []string `help:"Audience to move (repeatable)." required:"" short:"a"`
	To       string   `arg:"" help:"Workspace or state directory they go to (created if missing)."`
}

// Run moves each audience's state — memberships, runs, outbox, dead
// letters — from one state directory to another (diff.MoveAudience): the
// resharding step of `linkaud worker --shard`. Both directories must be
// free: stop the workers that hold them first.
func (c *stMoveCmd) Run(g *Globals, d *stateDir) error {
	from, err := resolveState(d.Dir)
	if err != nil {
		return err
	}
	to, err := resolveStateOrNew(c.To)
	if err != nil {
		return err
	}
	if filepath.Clean(from) == filepath.Clean(to) {
		return userError(fmt.Errorf("state move: %s and %s are the same state directory", d.Dir, c.To))
	}
	src, err := diff.Open(from, storeOptions(g.Logger()))
	if err != nil {
		return stateError(err)
	}
	defer src.Close()
	dst, err := diff.Open(to, storeOptions(g.Logger()))
	if err != nil {
		return stateError(err)
	}
	defer dst.Close()
	for _, aud := range c.Audience {
		rep, err := diff.MoveAudience(src, dst, aud)
		if err != nil {
			if errors.Is(err, diff.ErrAudienceExists) {
				return userError(err)
			}
			return infraError(err)
		}
		resumed := ""
		if rep.Resumed {
			resumed = " (finishing an interrupted move)"
		}
		fmt.Printf("moved %s%s: generation %d, %s, %s, %s in the outbox, %s\n", aud, resumed, rep.Generation,
			plural(rep.Rows, "row"), plural(rep.Runs, "run"), plural(rep.Pending, "event"), plural(rep.DeadLetters, "dead letter"))
	}
	return nil
}

// resolveStateOrNew is resolveState, or dir itself when it does not exist
// yet or is empty: a new shard's state directory.
func resolveStateOrNew(dir string) (string, error) {
	names, err := os.ReadDir(dir)
	if os.IsNotExist(err) || (err == nil && len(names) == 0) {
		return dir, nil
	}
	return resolveState(dir)
}
