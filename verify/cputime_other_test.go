//go:build !unix

package verify

import "time"

// processCPUTime reports false: this platform has no getrusage.
func processCPUTime() (time.Duration, bool) { return 0, false }
