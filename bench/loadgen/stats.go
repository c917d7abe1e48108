package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest value that at least p% of the values
// do not exceed. It returns 0 for an empty slice.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// maxErrorSamples is how many distinct error messages a run reports.
const maxErrorSamples = 3

// maxSampleLength bounds one reported error message, in bytes.
const maxSampleLength = 300

// errorLog counts errors and keeps the first distinct messages. It is safe
// for concurrent use.
type errorLog struct {
	mu      sync.Mutex
	count   int
	samples []string
}

func (l *errorLog) add(err error) {
	msg := err.Error()
	if len(msg) > maxSampleLength {
		msg = msg[:maxSampleLength] + "…"
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.count++
	if len(l.samples) < maxErrorSamples && !slices.Contains(l.samples, msg) {
		l.samples = append(l.samples, msg)
	}
}

// snapshot returns the error count and the sampled messages.
func (l *errorLog) snapshot() (int, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count, slices.Clone(l.samples)
}

// processMonitor samples the resident set size of a process every 100 ms
// and reads its CPU time, from /proc.
type processMonitor struct {
	pid      int
	peakKiB  int64
	cpuStart time.Duration
	done     chan struct{}
}

// sampleInterval is how often the monitor reads VmRSS.
const sampleInterval = 100 * time.Millisecond

// startMonitor starts sampling pid until ctx ends.
func startMonitor(ctx context.Context, pid int) (*processMonitor, error) {
	cpu, err := readCPUTime(pid)
	if err != nil {
		return nil, err
	}
	m := &processMonitor{pid: pid, cpuStart: cpu, done: make(chan struct{})}
	m.sample()
	go func() {
		defer close(m.done)
		t := time.NewTicker(sampleInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				m.sample()
			}
		}
	}()
	return m, nil
}

func (m *processMonitor) sample() {
	fields, err := readStatus(m.pid)
	if err != nil {
		return
	}
	m.peakKiB = max(m.peakKiB, fields["VmRSS"])
}

// processReport is the monitor's measurement over the run.
type processReport struct {
	// PeakRSSKiB is the largest VmRSS sampled during the run.
	PeakRSSKiB int64
	// HighWaterKiB is VmHWM: the peak RSS since the process started.
	HighWaterKiB int64
	// CPU is the user and system time the process spent during the run.
	CPU time.Duration
}

// stop waits for the sampler, whose context the caller has cancelled, and
// returns the report.
func (m *processMonitor) stop() (processReport, error) {
	<-m.done
	m.sample()
	fields, err := readStatus(m.pid)
	if err != nil {
		return processReport{}, err
	}
	cpu, err := readCPUTime(m.pid)
	if err != nil {
		return processReport{}, err
	}
	return processReport{PeakRSSKiB: m.peakKiB, HighWaterKiB: fields["VmHWM"], CPU: cpu - m.cpuStart}, nil
}

// readStatus returns the kB fields of /proc/PID/status, such as VmRSS.
func readStatus(pid int) (map[string]int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	fields := make(map[string]int64)
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		value, isKiB := strings.CutSuffix(strings.TrimSpace(value), " kB")
		if !ok || !isKiB {
			continue
		}
		if n, err := strconv.ParseInt(value, 10, 64); err == nil {
			fields[name] = n
		}
	}
	return fields, nil
}

// clockTicksPerSecond is USER_HZ, the unit of the CPU times in
// /proc/PID/stat. Linux fixes it at 100 on x86 and arm64.
const clockTicksPerSecond = 100

// readCPUTime returns the user plus system time of all threads of pid.
func readCPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name in field 2 may contain spaces, so count fields
	// after its closing parenthesis: utime and stime are fields 14 and 15.
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return 0, errors.New("parse /proc/PID/stat: no command name")
	}
	fields := strings.Fields(string(b[end+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("parse /proc/%d/stat: %d fields after the command name, want at least 13", pid, len(fields))
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicksPerSecond, nil
}
