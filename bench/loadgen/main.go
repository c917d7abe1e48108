// Command loadgen sends one workload of token-server requests over
// keep-alive connections and prints one line of JSON with the request
// rate, latency percentiles, error count and, given --pid, the server's
// peak RSS and CPU time. A run ends after --requests requests or
// --duration, whichever comes first.
//
// Usage:
//
//	loadgen --url http://127.0.0.1:8080 --workload cc --client-id ID --client-secret SECRET \
//	    --concurrency 8 --requests 20000 --duration 30s --warmup 3s --pid PID
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// result is the JSON line printed for one run. Latencies are in
// milliseconds.
type result struct {
	Label        string   `json:"label,omitempty"`
	Workload     string   `json:"workload"`
	Concurrency  int      `json:"concurrency"`
	Requests     int      `json:"requests"`
	Errors       int      `json:"errors"`
	ErrorSamples []string `json:"error_samples,omitempty"`
	DurationSec  float64  `json:"duration_s"`
	RPS          float64  `json:"rps"`
	P50          float64  `json:"p50_ms"`
	P90          float64  `json:"p90_ms"`
	P99          float64  `json:"p99_ms"`
	Max          float64  `json:"max_ms"`
	// The fields below are set only with --pid.
	PeakRSSKiB   int64   `json:"peak_rss_kib,omitempty"`
	HighWaterKiB int64   `json:"vmhwm_kib,omitempty"`
	ServerCPUSec float64 `json:"server_cpu_s,omitempty"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, stderr)
	if err != nil {
		return err
	}
	client := newClient(cfg.concurrency, cfg.timeout)
	defer client.CloseIdleConnections()

	var introspectToken string
	if cfg.workload == workloadIntrospect {
		introspectToken = cfg.token
		if introspectToken == "" {
			if introspectToken, err = obtainToken(ctx, &cfg, client); err != nil {
				return err
			}
		}
	}
	callers := make([]caller, cfg.concurrency)
	for i := range callers {
		callers[i] = newCaller(&cfg, client, introspectToken)
	}

	if cfg.warmup > 0 {
		if _, err := runPhase(ctx, callers, cfg.requests, cfg.warmup); err != nil {
			return err
		}
	}

	var monitor *processMonitor
	monitorCtx, stopMonitor := context.WithCancel(ctx)
	defer stopMonitor()
	if cfg.pid > 0 {
		if monitor, err = startMonitor(monitorCtx, cfg.pid); err != nil {
			return fmt.Errorf("monitor server process %d: %w", cfg.pid, err)
		}
	}

	m, err := runPhase(ctx, callers, cfg.requests, cfg.duration)
	if err != nil {
		return err
	}
	res := summarize(&cfg, m)
	if monitor != nil {
		stopMonitor()
		pr, err := monitor.stop()
		if err != nil {
			return fmt.Errorf("monitor server process %d: %w", cfg.pid, err)
		}
		res.PeakRSSKiB, res.HighWaterKiB, res.ServerCPUSec = pr.PeakRSSKiB, pr.HighWaterKiB, pr.CPU.Seconds()
	}
	return json.NewEncoder(stdout).Encode(res)
}

// newClient returns a client whose transport keeps one idle connection
// per worker, so every worker reuses its own connection.
func newClient(concurrency int, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        concurrency,
			MaxIdleConnsPerHost: concurrency,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
		// A redirect means a wrong URL, so it is reported, not followed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// measurement is the record of one phase.
type measurement struct {
	latencies []time.Duration // sorted
	elapsed   time.Duration
	errors    errorLog
}

// runPhase runs every caller in its own goroutine until maxRequests
// requests have started, the duration has passed, or ctx ends. Requests
// in flight at the deadline complete and are counted. It returns an error
// only when ctx ends first.
func runPhase(ctx context.Context, callers []caller, maxRequests int, duration time.Duration) (*measurement, error) {
	m := &measurement{}
	var started atomic.Int64
	perWorker := make([][]time.Duration, len(callers))
	begin := time.Now()
	deadline := begin.Add(duration)

	var wg sync.WaitGroup
	for i, c := range callers {
		wg.Go(func() {
			var lat []time.Duration
			for ctx.Err() == nil && time.Now().Before(deadline) && started.Add(1) <= int64(maxRequests) {
				if err := c.prepare(ctx); err != nil {
					m.errors.add(err)
					continue
				}
				t0 := time.Now()
				err := c.call(ctx)
				d := time.Since(t0)
				if err != nil {
					m.errors.add(err)
					continue
				}
				lat = append(lat, d)
			}
			perWorker[i] = lat
		})
	}
	wg.Wait()
	m.elapsed = time.Since(begin)
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	m.latencies = slices.Concat(perWorker...)
	slices.Sort(m.latencies)
	return m, nil
}

// summarize turns a measurement into the printed result. The request rate
// counts successful requests only.
func summarize(cfg *config, m *measurement) result {
	errCount, samples := m.errors.snapshot()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	res := result{
		Label:        cfg.label,
		Workload:     cfg.workload,
		Concurrency:  cfg.concurrency,
		Requests:     len(m.latencies),
		Errors:       errCount,
		ErrorSamples: samples,
		DurationSec:  m.elapsed.Seconds(),
		P50:          ms(percentile(m.latencies, 50)),
		P90:          ms(percentile(m.latencies, 90)),
		P99:          ms(percentile(m.latencies, 99)),
	}
	if n := len(m.latencies); n > 0 {
		res.Max = ms(m.latencies[n-1])
	}
	if m.elapsed > 0 {
		res.RPS = float64(len(m.latencies)) / m.elapsed.Seconds()
	}
	return res
}
