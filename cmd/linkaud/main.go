// Command linkaud builds customer audiences from warehouse data and streams
// their changes as events. See README.md and `linkaud --help`.
//
// This package stays thin: flags, options, calls into the stages, exit codes.
// Each verb lives in its own file and registers itself with register, so
// verbs can be added without editing this file.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/linkaud/linkaud/internal/buildinfo"
)

// Exit codes: 0 success, 1 user error (bad input, failed check),
// 2 internal or infrastructure failure.
const (
	exitOK    = 0
	exitUser  = 1
	exitInfra = 2
)

// exitError carries an exit code out of a command's Run.
type exitError struct {
	code int
	err  error // nil when the message was already printed
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// userError marks err as the user's (exit 1).
func userError(err error) error { return &exitError{code: exitUser, err: err} }

// infraError marks err as an internal or infrastructure failure (exit 2);
// damaged state and I/O failures of the state become their one-line
// refusal with what to do.
func infraError(err error) error {
	if r := refusal(err); r != nil {
		return r
	}
	return &exitError{code: exitInfra, err: err}
}

// silentExit exits with code after the command printed its own report.
func silentExit(code int) error { return &exitError{code: code} }

type verb struct {
	name, help string
	cmd        any
}

var verbs []verb

// register adds a verb to the CLI. cmd is a pointer to a kong command struct
// with a Run(*Globals) error method.
func register(name, help string, cmd any) { verbs = append(verbs, verb{name, help, cmd}) }

// Globals are the flags every verb accepts.
type Globals struct {
	LogLevel  string `help:"Log level: debug, info, warn, error." default:"info" enum:"debug,info,warn,error"`
	LogFormat string `help:"Log format: auto (text on a terminal, JSON otherwise), text, json." default:"auto" enum:"auto,text,json"`
}

type cli struct {
	Globals
	Version kong.VersionFlag `help:"Print the version (module version, commit, build time, Go and DuckDB versions) and exit."`
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	var c cli
	opts := []kong.Option{
		kong.Name("linkaud"),
		kong.Description("linkaud builds audiences from relational warehouse data and streams their changes as events."),
		kong.UsageOnError(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		kong.Bind(&c.Globals),
		kong.Vars{"version": strings.TrimSuffix(buildinfo.Get().String(), "\n")},
	}
	for _, v := range verbs {
		opts = append(opts, kong.DynamicCommand(v.name, v.help, "", v.cmd))
	}
	parser, err := kong.New(&c, opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "linkaud:", err)
		return exitInfra
	}
	completeIfAsked(parser)
	ctx, err := parser.Parse(args)
	if err != nil {
		var pe *kong.ParseError
		if errors.As(err, &pe) {
			fmt.Fprintln(os.Stderr, "linkaud:", err)
			return exitUser
		}
		fmt.Fprintln(os.Stderr, "linkaud:", err)
		return exitUser
	}
	if err := ctx.Run(&c.Globals); err != nil {
		var ee *exitError
		if r := refusal(err); r != nil && (!errors.As(err, &ee) || ee.code != exitUser) {
			ee = r
		}
		if ee != nil || errors.As(err, &ee) {
			if ee.err != nil {
				fmt.Fprintln(os.Stderr, "linkaud:", ee.err)
			}
			return ee.code
		}
		fmt.Fprintln(os.Stderr, "linkaud:", err)
		return exitInfra
	}
	return exitOK
}
