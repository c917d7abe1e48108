package main

// Tests of the deployment files: the healthcheck command through the built
// binary, and Dockerfile, docker-compose.yml and deploy/nginx.conf checked
// against the real command tree. No image is built and no container runs
// here: the files are parsed, and each check has cases that must fail.

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// repoRoot is the repository root, seen from this package's directory,
// which is where go test runs.
var repoRoot = filepath.Join("..", "..")

func TestHealthcheckCommand(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	s := in.serve()
	ready := s.url + "/health/ready"
	_, port, err := net.SplitHostPort(strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}

	unavailable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, `{"status":"database unavailable"}`)
	}))
	t.Cleanup(unavailable.Close)
	redirect := httptest.NewServer(http.RedirectHandler(ready, http.StatusFound))
	t.Cleanup(redirect.Close)
	silent := silentListener(t)

	tests := []struct {
		name    string
		env     []string
		args    []string
		wantErr string // empty: the command must exit 0
	}{
		{name: "url flag", args: []string{"--url", ready}},
		{name: "url from environment", env: []string{"AUTHSERVER_URL=" + ready}},
		{name: "port from AUTHSERVER_ADDR", env: []string{"AUTHSERVER_ADDR=:" + port}},
		{name: "closed port", args: []string{"--url", "http://" + freeAddr(t) + "/health/ready"}, wantErr: "connection refused"},
		{name: "server not ready", args: []string{"--url", unavailable.URL + "/health/ready"}, wantErr: "status 503"},
		{name: "unknown path", args: []string{"--url", s.url + "/health/missing"}, wantErr: "status 404"},
		{name: "redirect not followed", args: []string{"--url", redirect.URL}, wantErr: "status 302"},
		{name: "no answer", args: []string{"--url", "http://" + silent + "/health/ready", "--timeout", "200ms"}, wantErr: "no response within 200ms"},
		{name: "not an http url", args: []string{"--url", "ftp://127.0.0.1/health/ready"}, wantErr: "invalid --url"},
		{name: "addr without fixed port", args: []string{"--addr", ":0"}, wantErr: "fixed port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			stdout, stderr, err := runWithEnv(t, tt.env, "", append([]string{"healthcheck"}, tt.args...)...)
			elapsed := time.Since(start)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("healthcheck failed: %v\nstderr: %s", err, stderr)
				}
				if !strings.Contains(stdout, "200 OK") {
					t.Errorf("stdout = %q, want it to report 200 OK", stdout)
				}
				return
			}
			if exitErr, ok := errors.AsType[*exec.ExitError](err); !ok || exitErr.ExitCode() != 1 {
				t.Fatalf("healthcheck returned %v, want exit status 1\nstdout: %s", err, stdout)
			}
			if !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("stderr = %q, want it to mention %q", stderr, tt.wantErr)
			}
			if elapsed > 10*time.Second {
				t.Errorf("healthcheck took %s to fail", elapsed)
			}
		})
	}
}

// silentListener returns the address of a loopback listener that accepts
// connections and never responds, until the test ends.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan net.Conn, 16)
	go func() {
		// Accept fails once Cleanup closes the listener, which ends the loop.
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case conns <- c:
			default:
				_ = c.Close()
			}
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		for {
			select {
			case c := <-conns:
				_ = c.Close()
			default:
				return
			}
		}
	})
	return ln.Addr().String()
}

func TestHealthcheckReadinessURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr    string
		want    string
		wantErr bool
	}{
		{addr: ":8080", want: "http://127.0.0.1:8080/health/ready"},
		{addr: "0.0.0.0:9000", want: "http://127.0.0.1:9000/health/ready"},
		{addr: "[::]:9000", want: "http://127.0.0.1:9000/health/ready"},
		{addr: "10.1.2.3:8080", want: "http://10.1.2.3:8080/health/ready"},
		{addr: "[::1]:8080", want: "http://[::1]:8080/health/ready"},
		{addr: "8080", wantErr: true},
		{addr: "127.0.0.1:0", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			got, err := readinessURL(tt.addr)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("readinessURL(%q) = %q, want an error", tt.addr, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("readinessURL(%q) = %q, want %q", tt.addr, got, tt.want)
			}
		})
	}
}

// directEnv lists the AUTHSERVER_* variables that the binary reads without
// a flag. options.loadSecret reads AUTHSERVER_SECRET itself, because a
// secret is never taken as a flag value.
var directEnv = map[string]bool{"AUTHSERVER_SECRET": true}

// containerCommand finds the subcommand that args name in a fresh command
// tree, parses its flags, and applies env to the flags the way the binary
// does. It returns an error unless the subcommand is want and every flag
// and variable value is valid.
func containerCommand(args []string, env map[string]string, want string) (*cobra.Command, error) {
	root := newRootCommand(strings.NewReader(""), io.Discard, io.Discard, func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	})
	cmd, rest, err := root.Find(args)
	if err != nil {
		return nil, fmt.Errorf("command line %q: %w", args, err)
	}
	if cmd.Name() != want {
		return nil, fmt.Errorf("command line %q runs %q, want %q", args, cmd.CommandPath(), want)
	}
	// ParseFlags also merges the persistent flags of the parents into
	// cmd.Flags(), so cmd.Flags() lists every flag the subcommand reads.
	if err := cmd.ParseFlags(rest); err != nil {
		return nil, fmt.Errorf("command line %q: %w", args, err)
	}
	if err := cmd.ValidateArgs(cmd.Flags().Args()); err != nil {
		return nil, fmt.Errorf("command line %q: %w", args, err)
	}
	if err := root.PersistentPreRunE(cmd, nil); err != nil {
		return nil, fmt.Errorf("environment of %q: %w", args, err)
	}
	return cmd, nil
}

// unknownEnv returns, sorted, the AUTHSERVER_* variables in env that set no
// flag of cmd and are not in directEnv. The binary ignores such variables,
// so each is a setting that silently does nothing.
func unknownEnv(cmd *cobra.Command, env map[string]string) []string {
	known := map[string]bool{}
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		known[envFor(f.Name)] = true
	})
	var unknown []string
	for _, name := range slices.Sorted(maps.Keys(env)) {
		if strings.HasPrefix(name, "AUTHSERVER_") && !known[name] && !directEnv[name] {
			unknown = append(unknown, name)
		}
	}
	return unknown
}

// checkServeEnv checks that args run serve with valid flags and that every
// AUTHSERVER_* variable in env is read by serve and parses.
func checkServeEnv(args []string, env map[string]string) error {
	cmd, err := containerCommand(args, env, "serve")
	if err != nil {
		return err
	}
	if unknown := unknownEnv(cmd, env); len(unknown) > 0 {
		return fmt.Errorf("%s set no flag of %q", strings.Join(unknown, ", "), cmd.CommandPath())
	}
	return nil
}

// dockerImage is what the final stage of a Dockerfile sets.
type dockerImage struct {
	entrypoint  []string
	cmd         []string
	healthcheck []string // nil without HEALTHCHECK
	env         map[string]string
	copyTargets []string
	user        string
	expose      []string
	volumes     []string
}

// parseDockerfile reads the final stage of a Dockerfile. It rejects the
// shell form of ENTRYPOINT, CMD and HEALTHCHECK, because the distroless
// image has no /bin/sh to run it.
func parseDockerfile(text string) (dockerImage, error) {
	var img dockerImage
	for _, line := range dockerLines(text) {
		keyword, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(keyword) {
		case "FROM":
			img = dockerImage{env: map[string]string{}}
		case "ENTRYPOINT", "CMD":
			args, err := execForm(keyword, rest)
			if err != nil {
				return img, err
			}
			if strings.ToUpper(keyword) == "CMD" {
				img.cmd = args
			} else {
				img.entrypoint = args
			}
		case "HEALTHCHECK":
			args, err := healthcheckForm(rest)
			if err != nil {
				return img, err
			}
			img.healthcheck = args
		case "ENV":
			if err := parseDockerEnv(rest, img.env); err != nil {
				return img, err
			}
		case "COPY":
			fields := strings.Fields(rest)
			img.copyTargets = append(img.copyTargets, fields[len(fields)-1])
		case "USER":
			img.user = rest
		case "EXPOSE":
			img.expose = append(img.expose, strings.Fields(rest)...)
		case "VOLUME":
			var vols []string
			if json.Unmarshal([]byte(rest), &vols) != nil {
				vols = strings.Fields(rest)
			}
			img.volumes = append(img.volumes, vols...)
		}
	}
	if img.env == nil {
		return img, errors.New("dockerfile has no FROM")
	}
	return img, nil
}

// dockerLines returns the instructions of a Dockerfile, one per element,
// with continuation lines joined and comment lines dropped.
func dockerLines(text string) []string {
	var lines []string
	var current strings.Builder
	for raw := range strings.Lines(text) {
		line := strings.TrimSpace(raw)
		if strings.HasPrefix(line, "#") || (line == "" && current.Len() == 0) {
			continue
		}
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			current.WriteString(cont + " ")
			continue
		}
		current.WriteString(line)
		lines = append(lines, current.String())
		current.Reset()
	}
	if current.Len() > 0 {
		lines = append(lines, current.String())
	}
	return lines
}

func execForm(keyword, rest string) ([]string, error) {
	var args []string
	if !strings.HasPrefix(rest, "[") || json.Unmarshal([]byte(rest), &args) != nil {
		return nil, fmt.Errorf("%s %s: use the JSON exec form, because the shell form needs /bin/sh, which the image lacks", keyword, rest)
	}
	return args, nil
}

// healthcheckForm returns the command of a HEALTHCHECK instruction after
// its --option=value flags.
func healthcheckForm(rest string) ([]string, error) {
	for strings.HasPrefix(rest, "--") {
		_, after, _ := strings.Cut(rest, " ")
		rest = strings.TrimSpace(after)
	}
	keyword, command, _ := strings.Cut(rest, " ")
	if strings.ToUpper(keyword) != "CMD" {
		return nil, fmt.Errorf("HEALTHCHECK %s: want CMD and a command", rest)
	}
	return execForm("HEALTHCHECK CMD", strings.TrimSpace(command))
}

// parseDockerEnv adds the variables of an ENV instruction to env: the
// KEY=VALUE form, with optional double quotes, or the older KEY VALUE form.
func parseDockerEnv(rest string, env map[string]string) error {
	if rest == "" {
		return errors.New("ENV without a variable")
	}
	if !strings.Contains(strings.Fields(rest)[0], "=") {
		name, value, _ := strings.Cut(rest, " ")
		env[name] = strings.TrimSpace(value)
		return nil
	}
	for _, pair := range strings.Fields(rest) {
		name, value, ok := strings.Cut(pair, "=")
		if !ok {
			return fmt.Errorf("ENV %s: %q is not NAME=VALUE", rest, pair)
		}
		env[name] = strings.Trim(value, `"`)
	}
	return nil
}

// checkDockerImage checks the final stage of the Dockerfile against the
// command tree.
func checkDockerImage(img dockerImage) error {
	if len(img.entrypoint) == 0 {
		return errors.New("no ENTRYPOINT")
	}
	binary := img.entrypoint[0]
	var errs []error
	if !slices.Contains(img.copyTargets, binary) {
		errs = append(errs, fmt.Errorf("ENTRYPOINT runs %s, which no COPY of the final stage creates (COPY targets: %v)", binary, img.copyTargets))
	}
	args := slices.Concat(img.entrypoint[1:], img.cmd)
	if err := checkServeEnv(args, img.env); err != nil {
		errs = append(errs, fmt.Errorf("ENTRYPOINT and CMD: %w", err))
	}

	switch {
	case len(img.healthcheck) == 0:
		errs = append(errs, errors.New("no HEALTHCHECK"))
	case img.healthcheck[0] != binary:
		errs = append(errs, fmt.Errorf("HEALTHCHECK runs %s, want the ENTRYPOINT binary %s", img.healthcheck[0], binary))
	default:
		if _, err := containerCommand(img.healthcheck[1:], img.env, "healthcheck"); err != nil {
			errs = append(errs, fmt.Errorf("HEALTHCHECK: %w", err))
		}
	}

	uid, _, _ := strings.Cut(img.user, ":")
	if uid == "" || uid == "0" || uid == "root" {
		errs = append(errs, fmt.Errorf("USER is %q, want a non-root user", img.user))
	}
	if port := addrPort(img.env); !slices.Contains(img.expose, port) {
		errs = append(errs, fmt.Errorf("EXPOSE %v lacks port %s of AUTHSERVER_ADDR", img.expose, port))
	}
	if db := img.env["AUTHSERVER_DATABASE"]; db != "" && !isPostgres(db) && !slices.Contains(img.volumes, filepath.Dir(db)) {
		errs = append(errs, fmt.Errorf("AUTHSERVER_DATABASE %s is not in a VOLUME (%v), so the database would be lost with the container", db, img.volumes))
	}
	return errors.Join(errs...)
}

// addrPort returns the port of AUTHSERVER_ADDR in env, or of the flag's
// default when the variable is not set.
func addrPort(env map[string]string) string {
	addr, ok := env["AUTHSERVER_ADDR"]
	if !ok {
		addr = ":8080"
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return port
}

func readRepoFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	img, err := parseDockerfile(readRepoFile(t, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if err := checkDockerImage(img); err != nil {
		t.Error(err)
	}
}

func TestDockerfileChecksRejectMistakes(t *testing.T) {
	t.Parallel()
	original := readRepoFile(t, "Dockerfile")
	tests := []struct {
		name     string
		old, new string
		wantErr  string
	}{
		{"unknown subcommand", `CMD ["serve"]`, `CMD ["serv"]`, `unknown command "serv"`},
		{"admin subcommand", `CMD ["serve"]`, `CMD ["migrate"]`, `want "serve"`},
		{"unknown flag", `CMD ["serve"]`, `CMD ["serve", "--listen", ":8080"]`, "unknown flag: --listen"},
		{"invalid flag value", `CMD ["serve"]`, `CMD ["serve", "--access-token-ttl", "1 hour"]`, "access-token-ttl"},
		{"shell form CMD", `CMD ["serve"]`, `CMD serve`, "JSON exec form"},
		{"unknown variable", "AUTHSERVER_ADDR=:8080", "AUTHSERVER_LISTEN_ADDR=:8080", "AUTHSERVER_LISTEN_ADDR set no flag"},
		{"invalid variable value", "AUTHSERVER_ADDR=:8080", "AUTHSERVER_ADDR=:8080 AUTHSERVER_MAX_FAILURES=five", "AUTHSERVER_MAX_FAILURES"},
		{"healthcheck unknown subcommand", `CMD ["/authserver", "healthcheck"]`, `CMD ["/authserver", "health"]`, `unknown command "health"`},
		{"healthcheck runs serve", `CMD ["/authserver", "healthcheck"]`, `CMD ["/authserver", "serve"]`, `want "healthcheck"`},
		{"healthcheck shell form", `CMD ["/authserver", "healthcheck"]`, `CMD /authserver healthcheck`, "JSON exec form"},
		{"healthcheck other binary", `CMD ["/authserver", "healthcheck"]`, `CMD ["/bin/authserver", "healthcheck"]`, "want the ENTRYPOINT binary"},
		{"entrypoint not copied", `ENTRYPOINT ["/authserver"]`, `ENTRYPOINT ["/usr/bin/authserver"]`, "no COPY"},
		{"root user", "USER 65532:65532", "USER root", "non-root"},
		{"port not exposed", "AUTHSERVER_ADDR=:8080", "AUTHSERVER_ADDR=:9090", "lacks port 9090"},
		{"database outside volume", "AUTHSERVER_DATABASE=/data/authserver.db", "AUTHSERVER_DATABASE=/var/lib/authserver.db", "not in a VOLUME"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := strings.Replace(original, tt.old, tt.new, 1)
			if text == original {
				t.Fatalf("Dockerfile has no %q to replace, so update this case", tt.old)
			}
			img, err := parseDockerfile(text)
			if err == nil {
				err = checkDockerImage(img)
			}
			if err == nil {
				t.Fatalf("checks passed with %q in place of %q", tt.new, tt.old)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %v, want it to mention %q", err, tt.wantErr)
			}
		})
	}
}

// composeFile holds the parts of docker-compose.yml that the checks read.
type composeFile struct {
	Services map[string]*composeService `yaml:"services"`
	Secrets  map[string]composeSecret   `yaml:"secrets"`
}

type composeService struct {
	Image       string             `yaml:"image"`
	Build       composeBuild       `yaml:"build"`
	Command     composeArgs        `yaml:"command"`
	Entrypoint  composeArgs        `yaml:"entrypoint"`
	Environment composeEnv         `yaml:"environment"`
	EnvFile     yaml.Node          `yaml:"env_file"`
	Secrets     []composeSecretRef `yaml:"secrets"`
	Volumes     []composeVolume    `yaml:"volumes"`
	Healthcheck *struct {
		Test    composeArgs `yaml:"test"`
		Disable bool        `yaml:"disable"`
	} `yaml:"healthcheck"`
}

type composeSecret struct {
	File        string `yaml:"file"`
	Environment string `yaml:"environment"`
}

// composeBuild is the build key: a context path or a mapping.
type composeBuild struct {
	Context string `yaml:"context"`
}

func (b *composeBuild) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		b.Context = n.Value
		return nil
	}
	type plain composeBuild
	return n.Decode((*plain)(b))
}

// composeArgs is a command: a list, or a string that Compose splits into
// words. shell is set for the string form of a healthcheck test, which
// Compose runs with /bin/sh.
type composeArgs struct {
	args  []string
	shell bool
}

func (a *composeArgs) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		a.args, a.shell = strings.Fields(n.Value), true
		return nil
	}
	return n.Decode(&a.args)
}

// composeEnv is an environment: a mapping, or a list of NAME=VALUE. A name
// without a value takes the value from the shell, which is empty here.
type composeEnv map[string]string

func (e *composeEnv) UnmarshalYAML(n *yaml.Node) error {
	*e = composeEnv{}
	if n.Kind == yaml.SequenceNode {
		var list []string
		if err := n.Decode(&list); err != nil {
			return err
		}
		for _, kv := range list {
			name, value, _ := strings.Cut(kv, "=")
			(*e)[name] = value
		}
		return nil
	}
	var m map[string]*string
	if err := n.Decode(&m); err != nil {
		return err
	}
	for name, value := range m {
		(*e)[name] = ""
		if value != nil {
			(*e)[name] = *value
		}
	}
	return nil
}

// composeSecretRef is a service's use of a secret: its name, or a mapping
// with source and target.
type composeSecretRef struct {
	Source string `yaml:"source"`
	Target string `yaml:"target"`
}

func (r *composeSecretRef) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		r.Source = n.Value
		return nil
	}
	type plain composeSecretRef
	return n.Decode((*plain)(r))
}

// path returns where the secret appears in the container.
func (r composeSecretRef) path() string {
	switch {
	case r.Target == "":
		return "/run/secrets/" + r.Source
	case strings.HasPrefix(r.Target, "/"):
		return r.Target
	default:
		return "/run/secrets/" + r.Target
	}
}

// composeVolume is a mount: SOURCE:TARGET[:MODE], or a mapping.
type composeVolume struct {
	Source string `yaml:"source"`
	Target string `yaml:"target"`
}

func (v *composeVolume) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		parts := strings.Split(n.Value, ":")
		if len(parts) < 2 {
			v.Target = n.Value
			return nil
		}
		v.Source, v.Target = parts[0], parts[1]
		return nil
	}
	type plain composeVolume
	return n.Decode((*plain)(v))
}

// composeVariable matches ${NAME}, ${NAME:-default}, ${NAME-default},
// ${NAME:?error}, ${NAME?error}, ${NAME:+other} and ${NAME+other}.
var composeVariable = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}`)

// interpolate expands the variables in s the way Compose does, with shell
// holding the variables of the shell and the .env file.
func interpolate(s string, shell map[string]string) (string, error) {
	var errs []error
	out := composeVariable.ReplaceAllStringFunc(strings.ReplaceAll(s, "$$", "\x00"), func(m string) string {
		sub := composeVariable.FindStringSubmatch(m)
		name, op, arg := sub[1], sub[2], sub[3]
		if strings.Contains(arg, "${") {
			errs = append(errs, fmt.Errorf("%q: nested variables are not supported", s))
		}
		value, set := shell[name]
		nonEmpty := set && value != ""
		present := set
		if strings.HasPrefix(op, ":") {
			present = nonEmpty
		}
		switch strings.TrimPrefix(op, ":") {
		case "-":
			if !present {
				return arg
			}
		case "?":
			if !present {
				errs = append(errs, fmt.Errorf("variable %s is required: %s", name, arg))
			}
		case "+":
			if present {
				return arg
			}
			return ""
		}
		return value
	})
	if strings.Contains(out, "${") {
		errs = append(errs, fmt.Errorf("%q: unsupported variable syntax", s))
	}
	return strings.ReplaceAll(out, "\x00", "$"), errors.Join(errs...)
}

// deployment is a compose file with the image it builds and the files it
// refers to.
type deployment struct {
	compose composeFile
	image   dockerImage
	dir     string            // directory of the compose file
	nginx   string            // text of deploy/nginx.conf
	shell   map[string]string // variables for interpolation
}

// isAuthserver reports whether a service runs the image this repository
// builds.
func (d *deployment) isAuthserver(svc *composeService) bool {
	return svc.Build.Context != "" && filepath.Clean(svc.Build.Context) == "."
}

// replicas returns the names of the services that run authserver, sorted.
func (d *deployment) replicas() []string {
	var names []string
	for _, name := range slices.Sorted(maps.Keys(d.compose.Services)) {
		if d.isAuthserver(d.compose.Services[name]) {
			names = append(names, name)
		}
	}
	return names
}

// containerEnv returns the environment a service's container starts with:
// the image's ENV overlaid with the service's interpolated environment.
func (d *deployment) containerEnv(svc *composeService) (map[string]string, error) {
	env := maps.Clone(d.image.env)
	if !d.isAuthserver(svc) {
		env = map[string]string{}
	}
	var errs []error
	for name, raw := range svc.Environment {
		value, err := interpolate(raw, d.shell)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
		env[name] = value
	}
	return env, errors.Join(errs...)
}

// check runs every check on the deployment and returns all problems found.
func (d *deployment) check() error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(d.compose.Services)) {
		if err := d.checkService(d.compose.Services[name]); err != nil {
			errs = append(errs, fmt.Errorf("service %s: %w", name, err))
		}
	}
	errs = append(errs, d.checkReplicas(), d.checkLoadBalancer())
	return errors.Join(errs...)
}

// checkService checks the command line, environment and health check of
// one service.
func (d *deployment) checkService(svc *composeService) error {
	if !svc.EnvFile.IsZero() {
		return errors.New("env_file is not read by these checks, so set AUTHSERVER_* variables under environment")
	}
	env, err := d.containerEnv(svc)
	if err != nil {
		return err
	}
	if !d.isAuthserver(svc) {
		for _, name := range slices.Sorted(maps.Keys(env)) {
			if strings.HasPrefix(name, "AUTHSERVER_") {
				return fmt.Errorf("sets %s but does not run authserver", name)
			}
		}
		return nil
	}

	entrypoint := d.image.entrypoint
	if svc.Entrypoint.args != nil {
		entrypoint = svc.Entrypoint.args
	}
	cmd := d.image.cmd
	if svc.Command.args != nil {
		cmd = svc.Command.args
	}
	if len(entrypoint) == 0 {
		return errors.New("no entrypoint")
	}
	var errs []error
	if err := checkServeEnv(slices.Concat(entrypoint[1:], cmd), env); err != nil {
		errs = append(errs, err)
	}

	// Without a healthcheck key the image's HEALTHCHECK applies, which
	// TestDockerfile checks.
	if hc := svc.Healthcheck; hc != nil {
		test := hc.Test.args
		switch {
		case hc.Disable || (len(test) > 0 && test[0] == "NONE"):
			errs = append(errs, errors.New("healthcheck is disabled"))
		case hc.Test.shell || len(test) < 2 || test[0] != "CMD":
			errs = append(errs, fmt.Errorf("healthcheck test %q: want [\"CMD\", %q, \"healthcheck\"], because CMD-SHELL needs /bin/sh, which the image lacks", test, entrypoint[0]))
		case test[1] != entrypoint[0]:
			errs = append(errs, fmt.Errorf("healthcheck runs %s, want the image's binary %s", test[1], entrypoint[0]))
		default:
			if _, err := containerCommand(test[2:], env, "healthcheck"); err != nil {
				errs = append(errs, fmt.Errorf("healthcheck: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

// checkReplicas checks that the authserver services form one installation:
// the same PostgreSQL database, master secret and issuer.
func (d *deployment) checkReplicas() error {
	names := d.replicas()
	if len(names) < 2 {
		return fmt.Errorf("found authserver services %v, want at least two replicas", names)
	}
	var errs []error
	var first struct{ name, database, secret, issuer string }
	for i, name := range names {
		svc := d.compose.Services[name]
		env, err := d.containerEnv(svc)
		if err != nil {
			errs = append(errs, fmt.Errorf("service %s: %w", name, err))
			continue
		}
		database := env["AUTHSERVER_DATABASE"]
		if !isPostgres(database) {
			errs = append(errs, fmt.Errorf("service %s: AUTHSERVER_DATABASE %q is not a PostgreSQL URL; an SQLite file cannot be shared by replicas", name, database))
		} else if err := d.checkDatabaseService(database); err != nil {
			errs = append(errs, fmt.Errorf("service %s: %w", name, err))
		}
		secret, err := d.masterSecret(svc, env)
		if err != nil {
			errs = append(errs, fmt.Errorf("service %s: %w", name, err))
		}
		issuer := env["AUTHSERVER_ISSUER"]

		if i == 0 {
			first.name, first.database, first.secret, first.issuer = name, database, secret, issuer
			continue
		}
		if database != first.database {
			errs = append(errs, fmt.Errorf("service %s uses database %q, but %s uses %q", name, redactURL(database), first.name, redactURL(first.database)))
		}
		// An unusable secret is already reported above, so comparing it
		// adds nothing.
		if secret != "" && first.secret != "" && secret != first.secret {
			errs = append(errs, fmt.Errorf("service %s reads the master secret from %s, but %s reads it from %s", name, secret, first.name, first.secret))
		}
		if issuer != first.issuer {
			errs = append(errs, fmt.Errorf("service %s has issuer %q, but %s has %q", name, issuer, first.name, first.issuer))
		}
	}
	return errors.Join(errs...)
}

// redactURL returns database with the password of a URL replaced by
// "xxxxx", for error messages.
func redactURL(database string) string {
	u, err := url.Parse(database)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// masterSecret returns where a replica's master secret comes from, so that
// replicas can be compared. A secret file must be a mounted compose secret
// of at least 32 bytes.
func (d *deployment) masterSecret(svc *composeService, env map[string]string) (string, error) {
	if v := env["AUTHSERVER_SECRET"]; v != "" {
		return "AUTHSERVER_SECRET=" + v, nil
	}
	path := env["AUTHSERVER_SECRET_FILE"]
	if path == "" {
		return "", errors.New("no master secret: PostgreSQL needs AUTHSERVER_SECRET or AUTHSERVER_SECRET_FILE")
	}
	for _, ref := range svc.Secrets {
		if ref.path() != path {
			continue
		}
		secret, ok := d.compose.Secrets[ref.Source]
		if !ok {
			return "", fmt.Errorf("secret %s is not defined under the top-level secrets key", ref.Source)
		}
		if secret.File == "" {
			return "environment variable " + secret.Environment, nil
		}
		file := secret.File
		if !filepath.IsAbs(file) {
			file = filepath.Join(d.dir, file)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("secret %s: %w", ref.Source, err)
		}
		if n := len(strings.TrimRight(string(b), "\r\n")); n < 32 {
			return "", fmt.Errorf("secret %s in %s is %d bytes, but the server needs at least 32", ref.Source, secret.File, n)
		}
		return "file " + filepath.Clean(file), nil
	}
	return "", fmt.Errorf("AUTHSERVER_SECRET_FILE %s is not mounted from a compose secret", path)
}

// checkDatabaseService checks that a PostgreSQL URL names a postgres
// service of the compose file with the same user, password and database.
func (d *deployment) checkDatabaseService(database string) error {
	u, err := url.Parse(database)
	if err != nil {
		return fmt.Errorf("AUTHSERVER_DATABASE: %w", err)
	}
	svc, ok := d.compose.Services[u.Hostname()]
	if !ok {
		return fmt.Errorf("AUTHSERVER_DATABASE names host %s, which is no service of the compose file", u.Hostname())
	}
	env, err := d.containerEnv(svc)
	if err != nil {
		return err
	}
	// The postgres image's defaults: user postgres, database named as the user.
	wantUser := cmp.Or(env["POSTGRES_USER"], "postgres")
	wantDB := cmp.Or(env["POSTGRES_DB"], wantUser)
	password, _ := u.User.Password()
	var errs []error
	if u.User.Username() != wantUser {
		errs = append(errs, fmt.Errorf("AUTHSERVER_DATABASE user %q, but POSTGRES_USER is %q", u.User.Username(), wantUser))
	}
	if password != env["POSTGRES_PASSWORD"] {
		errs = append(errs, errors.New("AUTHSERVER_DATABASE password differs from POSTGRES_PASSWORD"))
	}
	if got := strings.TrimPrefix(u.Path, "/"); got != wantDB {
		errs = append(errs, fmt.Errorf("AUTHSERVER_DATABASE database %q, but POSTGRES_DB is %q", got, wantDB))
	}
	return errors.Join(errs...)
}

// nginxServer matches a "server host:port" line of an upstream block.
var nginxServer = regexp.MustCompile(`(?m)^\s*server\s+([A-Za-z0-9_.-]+:[0-9]+)\b`)

// checkLoadBalancer checks that a service mounts deploy/nginx.conf and that
// its upstream servers are exactly the replicas on their listen port.
func (d *deployment) checkLoadBalancer() error {
	mounted := false
	for _, svc := range d.compose.Services {
		for _, v := range svc.Volumes {
			if filepath.Clean(v.Source) == filepath.Join("deploy", "nginx.conf") {
				mounted = true
			}
		}
	}
	var errs []error
	if !mounted {
		errs = append(errs, errors.New("no service mounts ./deploy/nginx.conf"))
	}

	var want []string
	for _, name := range d.replicas() {
		env, err := d.containerEnv(d.compose.Services[name])
		if err != nil {
			return err
		}
		want = append(want, net.JoinHostPort(name, addrPort(env)))
	}
	var got []string
	for _, m := range nginxServer.FindAllStringSubmatch(d.nginx, -1) {
		got = append(got, m[1])
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		errs = append(errs, fmt.Errorf("deploy/nginx.conf balances over %v, want the replicas %v", got, want))
	}
	return errors.Join(errs...)
}

// loadDeployment parses the repository's compose file, Dockerfile and
// nginx configuration, with no shell variables set, as on a fresh clone.
func loadDeployment(t *testing.T) *deployment {
	t.Helper()
	var cf composeFile
	if err := yaml.Unmarshal([]byte(readRepoFile(t, "docker-compose.yml")), &cf); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	img, err := parseDockerfile(readRepoFile(t, "Dockerfile"))
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	return &deployment{
		compose: cf,
		image:   img,
		dir:     repoRoot,
		nginx:   readRepoFile(t, filepath.Join("deploy", "nginx.conf")),
		shell:   map[string]string{},
	}
}

func TestComposeFile(t *testing.T) {
	t.Parallel()
	d := loadDeployment(t)
	if got, want := d.replicas(), []string{"authserver-1", "authserver-2"}; !slices.Equal(got, want) {
		t.Errorf("authserver services = %v, want %v", got, want)
	}
	if err := d.check(); err != nil {
		t.Error(err)
	}
}

func TestComposeChecksRejectMistakes(t *testing.T) {
	t.Parallel()
	shortSecret := filepath.Join(t.TempDir(), "short-secret")
	if err := os.WriteFile(shortSecret, []byte("too short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	otherSecret := filepath.Join(t.TempDir(), "other-secret")
	if err := os.WriteFile(otherSecret, []byte(strings.Repeat("x", 40)), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		mutate  func(d *deployment)
		wantErr string
	}{
		{"misspelt variable", func(d *deployment) {
			d.compose.Services["authserver-2"].Environment["AUTHSERVER_DATABSE"] = "x"
		}, "AUTHSERVER_DATABSE set no flag"},
		{"variable of another command", func(d *deployment) {
			d.compose.Services["authserver-1"].Environment["AUTHSERVER_USERNAME"] = "admin"
		}, "AUTHSERVER_USERNAME set no flag"},
		{"invalid variable value", func(d *deployment) {
			d.compose.Services["authserver-1"].Environment["AUTHSERVER_ACCESS_TOKEN_TTL"] = "1 hour"
		}, "AUTHSERVER_ACCESS_TOKEN_TTL"},
		{"variable on another service", func(d *deployment) {
			d.compose.Services["postgres"].Environment["AUTHSERVER_ISSUER"] = "x"
		}, "does not run authserver"},
		{"env file", func(d *deployment) {
			d.compose.Services["authserver-1"].EnvFile = yaml.Node{Kind: yaml.ScalarNode, Value: "authserver.env"}
		}, "env_file"},
		{"unknown flag in command", func(d *deployment) {
			d.compose.Services["authserver-1"].Command = composeArgs{args: []string{"serve", "--db", "x"}}
		}, "unknown flag: --db"},
		{"other subcommand", func(d *deployment) {
			d.compose.Services["authserver-1"].Command = composeArgs{args: []string{"migrate"}}
		}, `want "serve"`},
		{"healthcheck unknown subcommand", func(d *deployment) {
			d.compose.Services["authserver-2"].Healthcheck.Test.args[2] = "health"
		}, `unknown command "health"`},
		{"healthcheck shell form", func(d *deployment) {
			d.compose.Services["authserver-2"].Healthcheck.Test = composeArgs{args: []string{"CMD-SHELL", "/authserver healthcheck"}}
		}, "CMD-SHELL needs /bin/sh"},
		{"healthcheck disabled", func(d *deployment) {
			d.compose.Services["authserver-2"].Healthcheck.Disable = true
		}, "disabled"},
		{"different database", func(d *deployment) {
			d.compose.Services["authserver-2"].Environment["AUTHSERVER_DATABASE"] = "postgres://authserver:example-password-replace-me@postgres:5432/other?sslmode=disable"
		}, "uses database"},
		{"SQLite replicas", func(d *deployment) {
			for _, name := range d.replicas() {
				d.compose.Services[name].Environment["AUTHSERVER_DATABASE"] = "/data/authserver.db"
			}
		}, "cannot be shared by replicas"},
		{"database host not a service", func(d *deployment) {
			for _, name := range d.replicas() {
				d.compose.Services[name].Environment["AUTHSERVER_DATABASE"] = "postgres://authserver:x@db.example:5432/authserver"
			}
		}, "no service of the compose file"},
		{"wrong database password", func(d *deployment) {
			d.shell["POSTGRES_PASSWORD"] = "from-the-shell"
			d.compose.Services["postgres"].Environment["POSTGRES_PASSWORD"] = "something-else"
		}, "password differs"},
		{"different master secret", func(d *deployment) {
			d.compose.Secrets["other"] = composeSecret{File: otherSecret}
			svc := d.compose.Services["authserver-2"]
			svc.Secrets = []composeSecretRef{{Source: "other"}}
			svc.Environment["AUTHSERVER_SECRET_FILE"] = "/run/secrets/other"
		}, "reads the master secret from"},
		{"secret file not mounted", func(d *deployment) {
			d.compose.Services["authserver-1"].Environment["AUTHSERVER_SECRET_FILE"] = "/run/secrets/missing"
		}, "not mounted from a compose secret"},
		{"no master secret", func(d *deployment) {
			delete(d.compose.Services["authserver-1"].Environment, "AUTHSERVER_SECRET_FILE")
		}, "no master secret"},
		{"short master secret", func(d *deployment) {
			d.compose.Secrets["authserver_master_secret"] = composeSecret{File: shortSecret}
		}, "needs at least 32"},
		{"different issuer", func(d *deployment) {
			d.compose.Services["authserver-2"].Environment["AUTHSERVER_ISSUER"] = "https://other.example"
		}, "has issuer"},
		{"replica missing from load balancer", func(d *deployment) {
			d.nginx = strings.Replace(d.nginx, "server authserver-2:8080", "server authserver-3:8080", 1)
		}, "balances over"},
		{"replica port differs from load balancer", func(d *deployment) {
			d.compose.Services["authserver-1"].Environment["AUTHSERVER_ADDR"] = ":9090"
		}, "authserver-1:9090"},
		{"one replica", func(d *deployment) {
			delete(d.compose.Services, "authserver-2")
		}, "at least two replicas"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := loadDeployment(t)
			tt.mutate(d)
			err := d.check()
			if err == nil {
				t.Fatal("checks passed, want an error")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %v, want it to mention %q", err, tt.wantErr)
			}
		})
	}
}

func TestComposeInterpolation(t *testing.T) {
	t.Parallel()
	shell := map[string]string{"SET": "value", "EMPTY": ""}
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{in: "plain", want: "plain"},
		{in: "${SET}", want: "value"},
		{in: "${UNSET}", want: ""},
		{in: "a${UNSET:-default}b", want: "adefaultb"},
		{in: "${EMPTY:-default}", want: "default"},
		{in: "${EMPTY-default}", want: ""},
		{in: "${SET:-default}", want: "value"},
		{in: "${SET:+other}", want: "other"},
		{in: "${UNSET:+other}", want: ""},
		{in: "$${SET}", want: "${SET}"},
		{in: "${UNSET:?set UNSET}", wantErr: true},
		{in: "${EMPTY?set EMPTY}", want: ""},
		{in: "${SET:-${UNSET}}", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := interpolate(tt.in, shell)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("interpolate(%q) = %q, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("interpolate(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
