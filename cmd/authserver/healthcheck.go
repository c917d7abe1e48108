package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// maxHealthBody is the maximum number of bytes of a failed response's body
// that go into the error, which a container runtime keeps as the
// health-check output.
const maxHealthBody = 256

func newHealthcheckCommand() *cobra.Command {
	var target, addr string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Exit 0 if the server's readiness endpoint returns 200",
		Long: "Send GET to the readiness endpoint of a running server and exit 0 if the response is 200 OK, 1 otherwise. " +
			"It is the container health check: distroless images have no shell or curl. " +
			"Without --url it checks http://127.0.0.1:PORT/health/ready, with PORT taken from --addr (AUTHSERVER_ADDR), " +
			"so it follows the listen address that serve reads from the same environment.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if target == "" {
				var err error
				if target, err = readinessURL(addr); err != nil {
					return err
				}
			}
			if err := checkHealth(cmd.Context(), target, timeout); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: 200 OK\n", target)
			return nil
		},
	}
	cmd.Flags().StringVar(&target, "url", "", "readiness URL to request; default http://127.0.0.1:PORT/health/ready with the port of --addr")
	cmd.Flags().StringVar(&addr, "addr", ":8080", "listen address of the server, as given to serve; sets the port of the default --url")
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "maximum time for connecting and receiving the response")
	return cmd
}

// readinessURL returns the loopback readiness URL of a server listening on
// addr. A wildcard or empty host becomes 127.0.0.1, because a server that
// listens on every interface also listens on loopback.
func readinessURL(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("invalid --addr %q: %w", addr, err)
	}
	if port == "" || port == "0" {
		return "", fmt.Errorf("invalid --addr %q: a health check needs a fixed port, so pass --url", addr)
	}
	switch host {
	case "", "0.0.0.0", "::":
		host = "127.0.0.1"
	}
	u := url.URL{Scheme: "http", Host: net.JoinHostPort(host, port), Path: "/health/ready"}
	return u.String(), nil
}

// checkHealth sends GET to target and returns nil if the response has
// status 200 and arrives within timeout. Redirects are not followed, so
// only the endpoint itself can pass.
func checkHealth(ctx context.Context, target string, timeout time.Duration) error {
	u, err := url.Parse(target)
	if err != nil {
		return fmt.Errorf("invalid --url %q: %w", target, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("invalid --url %q: expected an http or https URL with a host", target)
	}
	if timeout <= 0 {
		return fmt.Errorf("invalid --timeout %s: must be positive", timeout)
	}

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("health check %s: %w", target, err)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	// The check is about this server, so HTTP_PROXY in the container's
	// environment must not route it elsewhere.
	transport.Proxy = nil
	client := &http.Client{
		Transport: transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	defer client.CloseIdleConnections()

	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("health check %s: no response within %s", target, timeout)
		}
		return fmt.Errorf("health check %s: %w", target, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxHealthBody))
		return fmt.Errorf("health check %s: status %d, expected 200: %s", target, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}
