package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/linkaud/linkaud/internal/devbroker"
)

// broker is the Kafka-protocol broker the Kafka phase sends to.
type broker interface {
	Addr() string
	Close()
}

// startBroker starts the benchmark's broker: in a process of its own when
// Options.BrokerCommand is set, else in this one.
//
// kfake keeps every record it receives in memory. In process, those
// records are part of the benchmarked process's Go heap and count against
// its memory limit (the budget's Go heap share): at 1M profiles the heap
// grew from 0.6 to 0.9 GB during delivery, and the GC, held to the limit,
// ran back to back while the outbox was delivered, which the raw producer
// (sending first, to an emptier broker) paid less for. Out of process the
// broker's memory is its own, and both producers pay the same.
func startBroker(ctx context.Context, o Options, topics []string) (broker, error) {
	if len(o.BrokerCommand) == 0 {
		return devbroker.Start(devbroker.Options{Addr: "127.0.0.1:0", Partitions: 3, Topics: topics, Logger: o.Logger})
	}
	args := append(o.BrokerCommand[1:len(o.BrokerCommand):len(o.BrokerCommand)], "--addr", "127.0.0.1:0", "--partitions", "3", "--log-level", "error")
	for _, t := range topics {
		args = append(args, "--topic", t)
	}
	cmd := exec.Command(o.BrokerCommand[0], args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the broker (%s): %w", strings.Join(o.BrokerCommand, " "), err)
	}
	p := &brokerProcess{cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				addr <- a
				break
			}
		}
		io.Copy(io.Discard, out)
		cmd.Wait()
		close(p.done)
	}()
	select {
	case p.addr = <-addr:
		return p, nil
	case <-p.done:
		return nil, errors.New("the broker process exited before it listened")
	case <-time.After(30 * time.Second):
	case <-ctx.Done():
	}
	p.Close()
	return nil, errors.New("the broker process did not say where it listens within 30 s")
}

// brokerProcess is a broker run by Options.BrokerCommand.
type brokerProcess struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
}

func (p *brokerProcess) Addr() string { return p.addr }

// Close stops the process: SIGINT, then SIGKILL after 10 s.
func (p *brokerProcess) Close() {
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}
