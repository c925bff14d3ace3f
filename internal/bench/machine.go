package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
)

// Machine describes where a benchmark ran.
type Machine struct {
	CPU      string `json:"cpu"`
	CPUs     int    `json:"cpus"`
	MemoryGB int    `json:"memory_gb"`
	OS       string `json:"os"`
	Go       string `json:"go"`
	DuckDB   string `json:"duckdb,omitempty"`
	Postgres string `json:"postgres,omitempty"`
}

func (m Machine) String() string {
	wh := "DuckDB " + m.DuckDB
	if m.Postgres != "" {
		wh = m.Postgres
	}
	return fmt.Sprintf("%s, %d CPUs, %d GB RAM, %s, %s, %s", m.CPU, m.CPUs, m.MemoryGB, m.OS, m.Go, wh)
}

func thisMachine() Machine {
	m := Machine{CPU: "unknown", CPUs: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH, Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if v, ok := procField(b, "model name"); ok {
			m.CPU = v
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if v, ok := procField(b, "MemTotal"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64)
			m.MemoryGB = int((kb + 1<<19) >> 20)
		}
	}
	return m
}

// procField reads "name: value" from a /proc file.
func procField(b []byte, name string) (string, bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// resetPeakRSS starts a new peak resident set size for the process
// (Linux: writing 5 to clear_refs resets VmHWM). It reports whether the
// reset took, so that a peak read later is the peak since now.
func resetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// peakRSS is the peak resident set size in bytes since the last reset (or
// since the process started), or 0 where /proc is missing.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	v, ok := procField(b, "VmHWM")
	if !ok {
		return 0
	}
	kb, _ := strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64)
	return kb << 10
}

// sampleHeap samples the Go heap every 20ms until the returned function is
// called, which returns the largest value seen, in bytes.
func sampleHeap() (stop func() uint64) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var peak uint64
	read := func() {
		metrics.Read(sample)
		peak = max(peak, sample[0].Value.Uint64())
	}
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			read()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-finished
		read()
		return peak
	}
}

// peaks measures the peak RSS and Go heap from its start.
type peaks struct {
	reset    bool
	stopHeap func() uint64
	done     bool
}

func startPeaks(log *slog.Logger) *peaks {
	p := &peaks{reset: resetPeakRSS(), stopHeap: sampleHeap()}
	if !p.reset {
		log.Warn("cannot reset the peak RSS: peak_rss_mb is the process's peak")
	}
	return p
}

// stop returns the peaks in MB; later calls return zeros.
func (p *peaks) stop() (rssMB, heapMB float64) {
	if p.done {
		return 0, 0
	}
	p.done = true
	heap := p.stopHeap()
	return float64(peakRSS()) / (1 << 20), float64(heap) / (1 << 20)
}
