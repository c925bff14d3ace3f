package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/alecthomas/kong"
	"github.com/posener/complete"
	"github.com/willabides/kongplete"

	"github.com/linkaud/linkaud/dsl"
)

func init() {
	register("completion", "Print the shell completion script for bash, zsh or fish (see docs/install.md).", &completionCmd{})
}

// completionCmd prints the hook that makes the shell ask linkaud itself
// for completions: kongplete (over posener/complete) answers when the
// shell runs the binary with COMP_LINE set, from the same kong model the
// CLI parses with, so commands, flags, enum values, workspace directories
// and audience names complete without a script to keep in step.
type completionCmd struct {
	Shell string `arg:"" help:"bash, zsh or fish." enum:"bash,zsh,fish"`
}

// The hooks are kongplete's InstallCompletions scripts, for a shell named
// on the command line rather than guessed from the login shell.
var completionScripts = map[string]string{
	"bash": "complete -o default -C %[1]s %[2]s\n",
	"zsh": `autoload -U +X bashcompinit && bashcompinit
complete -o default -C %[1]s %[2]s
`,
	"fish": `function __complete_%[2]s
    set -lx COMP_LINE (commandline -cp)
    test -z (commandline -ct)
    and set COMP_LINE "$COMP_LINE "
    %[1]s
end
complete -f -c %[2]s -a "(__complete_%[2]s)"
`,
}

// shellQuote quotes s as one word for shell: bash and zsh take '…' with
// no escapes inside, fish '…' with \' and \\.
func shellQuote(shell, s string) string {
	if shell == "fish" {
		return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func (c *completionCmd) Run(*Globals) error {
	bin, err := os.Executable()
	if err != nil {
		return infraError(fmt.Errorf("finding the linkaud binary: %w", err))
	}
	if abs, err := filepath.Abs(bin); err == nil {
		bin = abs
	}
	fmt.Printf(completionScripts[c.Shell], shellQuote(c.Shell, bin), "linkaud")
	return nil
}

// complete answers a shell's completion request (COMP_LINE set) and exits;
// otherwise it returns at once.
func completeIfAsked(parser *kong.Kong) {
	if os.Getenv("COMP_LINE") == "" {
		return
	}
	cmd, err := kongplete.Command(parser,
		kongplete.WithPredictor("dir", complete.PredictDirs("*")),
		kongplete.WithPredictor("file", complete.PredictFiles("*")),
		kongplete.WithPredictor("audience", complete.PredictFunc(predictAudiences)),
	)
	if err != nil {
		os.Exit(exitInfra)
	}
	branchingArgs(parser.Model.Node, &cmd)
	cmp := complete.New(parser.Model.Name, cmd)
	cmp.Out = parser.Stdout
	if cmp.Complete() {
		os.Exit(exitOK)
	}
}

// branchingArgs fixes what kongplete makes of `audiences DIR list|enable …`
// and `deadletters DIR list|retry`: a positional argument followed by
// commands, which posener/complete cannot express, comes out as a
// subcommand named after the argument. The command's arguments are
// predicted instead: a directory first, then the commands, then the chosen
// command's own arguments and flags.
func branchingArgs(n *kong.Node, c *complete.Command) {
	for _, child := range n.Children {
		sub, ok := c.Sub[child.Name]
		if !ok {
			continue
		}
		if len(child.Children) == 1 && child.Children[0].Type == kong.ArgumentNode {
			arg := child.Children[0]
			sub.Args = branchPredictor{verbs: sub.Sub[arg.Name].Sub}
			sub.Sub = complete.Commands{}
		}
		branchingArgs(child, &sub)
		c.Sub[child.Name] = sub
	}
}

type branchPredictor struct{ verbs complete.Commands }

func (b branchPredictor) Predict(a complete.Args) []string {
	var words []string
	for _, w := range a.Completed {
		if !strings.HasPrefix(w, "-") {
			words = append(words, w)
		}
	}
	switch len(words) {
	case 0:
		return complete.PredictDirs("*").Predict(a)
	case 1:
		var out []string
		for name := range b.verbs {
			out = append(out, name)
		}
		return out
	}
	verb, ok := b.verbs[words[1]]
	if !ok {
		return nil
	}
	if strings.HasPrefix(a.Last, "-") {
		var out []string
		for f := range verb.Flags {
			out = append(out, f)
		}
		for f := range verb.GlobalFlags {
			out = append(out, f)
		}
		return out
	}
	if verb.Args == nil {
		return nil
	}
	// The command's own positions start after its name.
	for i, w := range a.Completed {
		if w == words[1] {
			a.Completed = a.Completed[i+1:]
			break
		}
	}
	return verb.Args.Predict(a)
}

// predictAudiences offers the audiences of the workspace named on the
// line: the first word after the command that is a directory with .la
// files. A workspace with errors offers the audiences that checked.
func predictAudiences(a complete.Args) []string {
	for _, w := range a.All {
		if strings.HasPrefix(w, "-") {
			continue
		}
		if m, _ := filepath.Glob(filepath.Join(w, "*.la")); len(m) == 0 {
			continue
		}
		files, _ := dsl.Load(w, dsl.Options{})
		var names []string
		if files != nil {
			for _, aud := range files.Audiences {
				names = append(names, aud.Name)
			}
		}
		return names
	}
	return nil
}
