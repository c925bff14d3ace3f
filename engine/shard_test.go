package engine

import (
	"fmt"
	"testing"
)

func TestParseShard(t *testing.T) {
	for spec, want := range map[string]string{
		"0/3": "", "2/3": "", "0/1": "",
		"3/2":  `shard "3/2": K counts from 0 to N-1 (2 workers are shards 0/2 … 1/2)`,
		"2/2":  `shard "2/2": K counts from 0 to N-1 (2 workers are shards 0/2 … 1/2)`,
		"0/0":  `shard "0/0": N, the number of workers, must be at least 1`,
		"-1/3": `shard "-1/3": K counts from 0 to N-1 (3 workers are shards 0/3 … 2/3)`,
		"1":    `shard "1": write K/N, this worker's shard K of N workers, counted from 0 (0/3, 1/3, 2/3)`,
		"a/b":  `shard "a/b": write K/N, this worker's shard K of N workers, counted from 0 (0/3, 1/3, 2/3)`,
	} {
		s, err := ParseShard(spec)
		got := ""
		if err != nil {
			got = err.Error()
		} else if s.String() != spec {
			got = "parsed as " + s.String()
		}
		if got != want {
			t.Errorf("ParseShard(%q): %q, want %q", spec, got, want)
		}
	}
}

// Rendezvous hashing: shares are even, and removing the last shard moves
// only its own audiences.
func TestOwner(t *testing.T) {
	const n = 3000
	counts := make([]int, 4)
	moved := 0
	for i := range n {
		name := fmt.Sprintf("audience_%d", i)
		was := Owner(name, 4)
		counts[was]++
		now := Owner(name, 3)
		if was != 3 && now != was {
			t.Fatalf("%s moved from shard %d to %d when shard 3 left", name, was, now)
		}
		if was != now {
			moved++
		}
	}
	for k, c := range counts {
		if c < n/4*8/10 || c > n/4*12/10 {
			t.Errorf("shard %d/4 owns %d of %d audiences, want about %d", k, c, n, n/4)
		}
	}
	if moved != counts[3] {
		t.Errorf("%d moved, shard 3 had %d", moved, counts[3])
	}
}
