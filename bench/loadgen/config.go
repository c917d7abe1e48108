package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Workload names, as given to --workload.
const (
	workloadClientCredentials = "cc"
	workloadIntrospect        = "introspect"
	workloadLogin             = "login"
	workloadPassword          = "password"
	workloadRefresh           = "refresh"
	workloadJWKS              = "jwks"
)

var workloads = []string{workloadClientCredentials, workloadIntrospect, workloadLogin, workloadPassword, workloadRefresh, workloadJWKS}

// config contains the settings of one run.
type config struct {
	baseURL       string
	introspectURL string
	workload      string
	label         string

	requests    int
	duration    time.Duration
	warmup      time.Duration
	concurrency int
	timeout     time.Duration

	clientID     string
	clientSecret string
	username     string
	password     string
	scope        string

	// token is the token to introspect. When it is empty, the introspect
	// workload first obtains one with the client-credentials grant as
	// tokenClientID.
	token             string
	tokenClientID     string
	tokenClientSecret string

	pid int
}

// parseConfig parses the command-line arguments and checks that the
// chosen workload has every setting it needs. Output receives the usage
// text when the arguments are invalid.
func parseConfig(args []string, output io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&c.baseURL, "url", "", "base URL of the server, such as http://127.0.0.1:8080 (required)")
	fs.StringVar(&c.introspectURL, "introspect-url", "", "full URL of the introspection endpoint; default <url>/oauth2/introspect")
	fs.StringVar(&c.workload, "workload", "", "one of "+strings.Join(workloads, ", ")+" (required)")
	fs.StringVar(&c.label, "label", "", "free text copied into the output, such as the server's name")
	fs.IntVar(&c.requests, "requests", 10000, "maximum number of measured requests; the run stops at this count or after --duration, whichever comes first")
	fs.DurationVar(&c.duration, "duration", 30*time.Second, "maximum length of the measured phase")
	fs.DurationVar(&c.warmup, "warmup", 0, "length of an unmeasured warm-up phase before the measured one (also bounded by --requests)")
	fs.IntVar(&c.concurrency, "concurrency", 1, "number of workers, each sending one request at a time over its own keep-alive connection")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "timeout of one request")
	fs.StringVar(&c.clientID, "client-id", "", "client id sent with HTTP Basic authentication; for introspect, empty sends no authentication")
	fs.StringVar(&c.clientSecret, "client-secret", "", "client secret sent with HTTP Basic authentication")
	fs.StringVar(&c.username, "username", "", "username for the login, password and refresh workloads")
	fs.StringVar(&c.password, "password", "", "password for the login, password and refresh workloads")
	fs.StringVar(&c.scope, "scope", "", "scope parameter of token requests; empty sends none")
	fs.StringVar(&c.token, "token", "", "token to introspect; default one obtained with the client-credentials grant at start")
	fs.StringVar(&c.tokenClientID, "token-client-id", "", "client that obtains the token to introspect; default --client-id")
	fs.StringVar(&c.tokenClientSecret, "token-client-secret", "", "secret of --token-client-id; default --client-secret")
	fs.IntVar(&c.pid, "pid", 0, "process id of the server; when set, its peak RSS and CPU time are reported")

	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q: every setting is a flag", fs.Arg(0))
	}

	if c.tokenClientID == "" {
		c.tokenClientID, c.tokenClientSecret = c.clientID, c.clientSecret
	}
	if err := c.validate(); err != nil {
		return config{}, err
	}
	if c.introspectURL == "" {
		c.introspectURL = c.baseURL + "/oauth2/introspect"
	}
	return c, nil
}

// validate checks the bounds and the settings each workload needs.
func (c *config) validate() error {
	var errs []error
	c.baseURL = strings.TrimSuffix(c.baseURL, "/")
	if err := checkURL("--url", c.baseURL); err != nil {
		errs = append(errs, err)
	}
	if c.introspectURL != "" {
		if err := checkURL("--introspect-url", c.introspectURL); err != nil {
			errs = append(errs, err)
		}
	}

	if !slices.Contains(workloads, c.workload) {
		errs = append(errs, fmt.Errorf("--workload %q is invalid: use one of %s", c.workload, strings.Join(workloads, ", ")))
	}
	if c.requests <= 0 {
		errs = append(errs, fmt.Errorf("--requests %d is invalid: it must be positive", c.requests))
	}
	if c.duration <= 0 {
		errs = append(errs, fmt.Errorf("--duration %s is invalid: it must be positive", c.duration))
	}
	if c.warmup < 0 {
		errs = append(errs, fmt.Errorf("--warmup %s is invalid: it must not be negative", c.warmup))
	}
	if c.concurrency <= 0 {
		errs = append(errs, fmt.Errorf("--concurrency %d is invalid: it must be positive", c.concurrency))
	}
	if c.timeout <= 0 {
		errs = append(errs, fmt.Errorf("--timeout %s is invalid: it must be positive", c.timeout))
	}
	if c.pid < 0 {
		errs = append(errs, fmt.Errorf("--pid %d is invalid: it must be a process id", c.pid))
	}
	errs = append(errs, c.missingCredentials()...)
	return errors.Join(errs...)
}

// missingCredentials lists the credentials the workload needs but lacks.
func (c *config) missingCredentials() []error {
	needClient := false
	needUser := false
	switch c.workload {
	case workloadClientCredentials:
		needClient = true
	case workloadLogin:
		needUser = true
	case workloadPassword, workloadRefresh:
		needClient, needUser = true, true
	case workloadIntrospect:
		if c.token == "" && (c.tokenClientID == "" || c.tokenClientSecret == "") {
			return []error{errors.New("the introspect workload needs --token, or --token-client-id and --token-client-secret (or --client-id and --client-secret) to obtain one")}
		}
		if c.clientID != "" && c.clientSecret == "" {
			return []error{errors.New("--client-id is set without --client-secret")}
		}
	}

	var errs []error
	if needClient && (c.clientID == "" || c.clientSecret == "") {
		errs = append(errs, fmt.Errorf("the %s workload needs --client-id and --client-secret", c.workload))
	}
	if needUser && (c.username == "" || c.password == "") {
		errs = append(errs, fmt.Errorf("the %s workload needs --username and --password", c.workload))
	}
	return errs
}

func checkURL(flagName, raw string) error {
	if raw == "" {
		return fmt.Errorf("%s is missing", flagName)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s %q is invalid: use an absolute http or https URL", flagName, raw)
	}
	return nil
}
