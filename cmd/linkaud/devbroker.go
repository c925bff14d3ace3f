package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/linkaud/linkaud/internal/devbroker"
)

func init() {
	register("devbroker", "Run an in-process Kafka-protocol broker for development and the demo (NOT FOR PRODUCTION).", &devbrokerCmd{})
}

type devbrokerCmd struct {
	Addr       string   `help:"Address to listen on and advertise to clients (port 0 picks a free one)." default:"127.0.0.1:9092"`
	Partitions int      `help:"Partitions of new topics." default:"3"`
	Topic      []string `help:"Topics to create at start (others are created on first use)."`
	DataDir    string   `help:"Keep the broker's data in this directory across restarts (default: in memory)." type:"path"`
}

func (c *devbrokerCmd) Run(g *Globals) error {
	log := g.Logger()
	if c.Partitions < 1 {
		return userError(fmt.Errorf("--partitions must be at least 1"))
	}
	b, err := devbroker.Start(devbroker.Options{
		Addr: c.Addr, Partitions: c.Partitions, Topics: c.Topic, DataDir: c.DataDir, Logger: log,
	})
	if err != nil {
		return infraError(err)
	}
	defer b.Close()
	fmt.Fprintf(os.Stdout, "linkaud devbroker: %s\nlistening on %s\n", devbroker.Banner, b.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	fmt.Fprintln(os.Stdout, "linkaud devbroker: stopped")
	return nil
}
