package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// maxConfigBytes bounds the configuration file.
const maxConfigBytes = 1 << 20

// secretKeys are settings a configuration file may not hold: secrets come
// from the environment or a file of their own, which operators protect
// more carefully than a configuration file.
var secretKeys = []string{"secret"}

// loadConfigFile reads a YAML (.yaml, .yml) or TOML (.toml) file whose keys
// are flag names, such as `access-token-ttl: 1h`. It returns each value as
// the text a flag would take.
func loadConfigFile(path string) (map[string]string, error) {
	f, err := os.Open(path) //nolint:gosec // the operator names this file
	if err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}
	defer func() { _ = f.Close() }()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read config file %s: %w", path, err)
	}
	if len(data) > maxConfigBytes {
		return nil, fmt.Errorf("config file %s is larger than %d bytes", path, maxConfigBytes)
	}

	raw := map[string]any{}
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".yaml", ".yml":
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&raw); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("parse config file %s: %w", path, err)
		}
	case ".toml":
		if err := toml.Unmarshal(data, &raw); err != nil {
			return nil, fmt.Errorf("parse config file %s: %w", path, err)
		}
	default:
		return nil, fmt.Errorf("config file %s: use a .yaml, .yml or .toml file", path)
	}

	values := make(map[string]string, len(raw))
	for k, v := range raw {
		if slices.Contains(secretKeys, k) {
			return nil, fmt.Errorf("config file %s: %q is not allowed there; pass the master secret in AUTHSERVER_SECRET or with secret-file", path, k)
		}
		switch v := v.(type) {
		case string, bool, int, int64, uint64, float64:
			values[k] = fmt.Sprint(v)
		default:
			return nil, fmt.Errorf("config file %s: %q must be a single value, not %T", path, k, v)
		}
	}
	return values, nil
}

// applySettings fills every flag the command line did not set, first from
// its AUTHSERVER_* environment variable, then from the configuration file.
// It rejects file keys that name no flag of the command.
func (o *options) applySettings(cmd *cobra.Command, file map[string]string) error {
	var errs []error
	seen := map[string]bool{}
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		seen[f.Name] = true
		if f.Changed || f.Name == "help" || f.Name == "config" {
			return
		}
		if v, ok := o.lookupEnv(envFor(f.Name)); ok {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", envFor(f.Name), v, err))
			}
			return
		}
		if v, ok := file[f.Name]; ok {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("config file key %s=%q: %w", f.Name, v, err))
			}
		}
	})
	for k := range file {
		if !seen[k] && !knownSetting(cmd.Root(), k) {
			errs = append(errs, fmt.Errorf("config file key %q is not a setting; see authserver serve --help", k))
		}
	}
	return errors.Join(errs...)
}

// knownSetting reports whether any command of the tree has a flag name,
// so one file can configure serve and the admin commands alike.
func knownSetting(root *cobra.Command, name string) bool {
	if root.Flags().Lookup(name) != nil || root.PersistentFlags().Lookup(name) != nil {
		return true
	}
	for _, c := range root.Commands() {
		if knownSetting(c, name) {
			return true
		}
	}
	return false
}

func newConfigCommand(o *options) *cobra.Command {
	cfg := &cobra.Command{Use: "config", Short: "Check the configuration"}
	var asJSON bool
	check := &cobra.Command{
		Use:   "check",
		Short: "Validate the configuration and print the effective settings",
		Long: "Resolve every serve setting from flags, AUTHSERVER_* variables and the --config file " +
			"(in that order of precedence, over the defaults), validate them, and print the result with secrets redacted.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validateServe(cmd.Context()); err != nil {
				return err
			}
			settings := map[string]string{}
			cmd.Flags().VisitAll(func(f *pflag.Flag) {
				if f.Name == "help" || f.Name == "json" {
					return
				}
				settings[f.Name] = f.Value.String()
			})
			settings["database"] = redactDatabase(settings["database"])
			settings["secret"] = "[REDACTED] (" + o.secretSource + ")"

			out := cmd.OutOrStdout()
			if asJSON {
				return json.NewEncoder(out).Encode(settings)
			}
			names := make([]string, 0, len(settings))
			for k := range settings {
				names = append(names, k)
			}
			slices.Sort(names)
			for _, k := range names {
				fmt.Fprintf(out, "%s = %s\n", k, settings[k])
			}
			return nil
		},
	}
	o.addServeFlags(check.Flags())
	check.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	cfg.AddCommand(check)
	return cfg
}

// redactDatabase removes a password from a database URL.
func redactDatabase(database string) string {
	if !isPostgres(database) {
		return database
	}
	u, err := url.Parse(database)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
