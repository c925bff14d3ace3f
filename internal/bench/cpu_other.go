//go:build !unix

package bench

import "time"

// processCPU is unknown here: cpu_utilization reads 0.
func processCPU() time.Duration { return 0 }
