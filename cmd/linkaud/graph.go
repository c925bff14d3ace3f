package main

import (
	"os"

	"github.com/linkaud/linkaud/dsl"
)

func init() {
	register("graph", "Draw the data graph: entities, relationships with their join columns, depth levels.", &graphCmd{})
}

type graphCmd struct {
	Dir    string `arg:"" help:"Workspace directory." predictor:"dir"`
	Format string `help:"Output format: mermaid or dot." enum:"mermaid,dot" default:"mermaid"`
}

func (c *graphCmd) Run(g *Globals) error {
	ws, err := loadWorkspace(c.Dir, dsl.Options{})
	if err != nil {
		return err
	}
	if c.Format == "dot" {
		return ws.Graph.WriteDot(os.Stdout)
	}
	return ws.Graph.WriteMermaid(os.Stdout)
}
