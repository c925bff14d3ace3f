package engine

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/linkaud/linkaud/dsl"
)

// Shard is one of N workers sharing a workspace (`linkaud worker --shard
// K/N`): each owns a disjoint set of the audiences, with a state directory
// of its own, and together they own every audience.
//
// Ownership is rendezvous (highest random weight) hashing of the audience
// name: every worker scores each audience against each of the N shards and
// the highest score owns it. It needs no coordination and no shared state,
// and when N changes only the audiences whose owner changed move — from
// N to N-1, exactly those of the shard that went away (`linkaud state move`
// carries their state over).
type Shard struct {
	// K is this worker's shard, 0 ≤ K < N: a StatefulSet pod's ordinal.
	K, N int
}

// ParseShard reads "K/N".
func ParseShard(s string) (Shard, error) {
	ks, ns, ok := strings.Cut(strings.TrimSpace(s), "/")
	k, kerr := strconv.Atoi(ks)
	n, nerr := strconv.Atoi(ns)
	switch {
	case !ok || kerr != nil || nerr != nil:
		return Shard{}, fmt.Errorf("shard %q: write K/N, this worker's shard K of N workers, counted from 0 (0/3, 1/3, 2/3)", s)
	case n < 1:
		return Shard{}, fmt.Errorf("shard %q: N, the number of workers, must be at least 1", s)
	case k < 0 || k >= n:
		return Shard{}, fmt.Errorf("shard %q: K counts from 0 to N-1 (%d workers are shards 0/%d … %d/%d)", s, n, n, n-1, n)
	}
	return Shard{K: k, N: n}, nil
}

func (s Shard) String() string { return fmt.Sprintf("%d/%d", s.K, s.N) }

// Owner is the shard of n that owns the audience named name.
func Owner(name string, n int) int {
	best, owner := uint64(0), 0
	for i := range n {
		if w := score(name, i); i == 0 || w > best {
			best, owner = w, i
		}
	}
	return owner
}

func score(name string, shard int) uint64 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write(binary.BigEndian.AppendUint32(nil, uint32(shard)))
	return binary.BigEndian.Uint64(h.Sum(nil))
}

// Owns reports whether this shard owns the audience named name.
func (s Shard) Owns(name string) bool { return s.N <= 1 || Owner(name, s.N) == s.K }

// Apply returns the workspace as this shard runs it: only the audiences it
// owns and their activations. An audience another shard owns stays
// reachable through `in audience` (the checked definitions point at each
// other), it is only not scheduled, computed or delivered here.
func (s Shard) Apply(ws *dsl.Workspace) *dsl.Workspace {
	if s.N <= 1 {
		return ws
	}
	out := *ws
	out.Audiences = nil
	out.Activations = nil
	owned := map[*dsl.Audience]bool{}
	for _, a := range ws.Audiences {
		if s.Owns(a.Name) {
			out.Audiences = append(out.Audiences, a)
			owned[a] = true
		}
	}
	for _, act := range ws.Activations {
		if owned[act.Audience] {
			out.Activations = append(out.Activations, act)
		}
	}
	return &out
}
