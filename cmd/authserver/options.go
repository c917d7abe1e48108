package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/ory/fosite"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/quanux/authserver/keys"
	"github.com/quanux/authserver/oauth"
	"github.com/quanux/authserver/storage"
)

// options holds every setting. Each flag may also come from its
// AUTHSERVER_* environment variable; a flag given on the command line wins.
type options struct {
	lookupEnv func(string) (string, bool)
	stderr    io.Writer

	database          string
	secretFile        string
	dbMaxOpenConns    int
	dbMaxIdleConns    int
	dbConnMaxLifetime time.Duration
	logFormat         string
	logLevel          string

	addr            string
	issuer          string
	audience        string
	accessTokenTTL  time.Duration
	refreshTokenTTL time.Duration
	signingAlg      string
	keysReloadEvery time.Duration
	keysRotateEvery time.Duration
	syncEvery       time.Duration
	statelessTokens bool
	shutdownTimeout time.Duration
	auditRetention  time.Duration
	metricsAddr     string
	maxFailures     int
	lockout         time.Duration
	lockoutMax      time.Duration
	addressRate     float64
	addressBurst    int

	configFile string

	secret []byte
	// secretSource names where the master secret came from, for logs.
	secretSource string
	logger       *slog.Logger
}

// LogValue lists the settings without the master secret.
func (o *options) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("addr", o.addr),
		slog.String("database", o.database),
		slog.String("issuer", o.issuer),
		slog.String("audience", o.audience),
		slog.Duration("access_token_ttl", o.accessTokenTTL),
		slog.Duration("refresh_token_ttl", o.refreshTokenTTL),
		slog.String("signing_alg", o.signingAlg),
		slog.String("secret", "[REDACTED]"),
	)
}

// envFor maps a flag name to its environment variable.
func envFor(flag string) string {
	return "AUTHSERVER_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

func (o *options) addStoreFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.configFile, "config", "", "YAML (.yaml) or TOML (.toml) file of settings keyed by flag name; flags and AUTHSERVER_* variables override it")
	fs.StringVar(&o.database, "database", "authserver.db", "SQLite file path, or a postgres:// URL")
	fs.StringVar(&o.secretFile, "secret-file", "", "file holding the master secret (at least 32 bytes); AUTHSERVER_SECRET gives it directly; with SQLite and neither set, <database>.secret is created")
	fs.IntVar(&o.dbMaxOpenConns, "db-max-open-conns", 0, "maximum open database connections per process; 0 means 20 on PostgreSQL and 8 on SQLite")
	fs.IntVar(&o.dbMaxIdleConns, "db-max-idle-conns", 0, "idle database connections kept per process; 0 means 10, at most db-max-open-conns")
	fs.DurationVar(&o.dbConnMaxLifetime, "db-conn-max-lifetime", 30*time.Minute, "database connections older than this are closed and reopened")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&o.logLevel, "log-level", "info", "minimum log level: debug, info, warn or error")
}

func (o *options) addServeFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.addr, "addr", ":8080", "listen address, host:port")
	fs.StringVar(&o.issuer, "issuer", "http://localhost:8080", "issuer URL: the iss of tokens and the base of endpoint URLs")
	fs.StringVar(&o.audience, "audience", "quanux-api", "aud of access tokens, which resource servers check")
	fs.DurationVar(&o.accessTokenTTL, "access-token-ttl", time.Hour, "access-token lifetime")
	fs.DurationVar(&o.refreshTokenTTL, "refresh-token-ttl", 720*time.Hour, "refresh-token lifetime")
	fs.StringVar(&o.signingAlg, "signing-alg", "RS256", "token signing algorithm: RS256, ES256 or EdDSA")
	fs.DurationVar(&o.keysReloadEvery, "keys-reload-interval", 30*time.Second, "how often the signing keys are reloaded from the database, so a rotation made by another process takes effect")
	fs.DurationVar(&o.keysRotateEvery, "keys-rotate-interval", 0, "rotate the signing key when the active one is older than this; 0 turns automatic rotation off")
	fs.DurationVar(&o.syncEvery, "sync-interval", time.Second, "how often the process reads the changes other processes made to clients, users and revoked tokens; cached clients and revocations made elsewhere take effect within this time; 0 turns the cache off")
	fs.BoolVar(&o.statelessTokens, "stateless-client-tokens", false, "issue client-credentials access tokens without a database record; revocation then goes through a list every process loads (see docs/security.md)")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 15*time.Second, "how long shutdown waits for requests in flight")
	fs.StringVar(&o.metricsAddr, "metrics-addr", "", "serve /metrics on this address instead of the main listener, such as 127.0.0.1:9090")
	fs.DurationVar(&o.auditRetention, "audit-retention", 90*24*time.Hour, "how long audit events are kept before serve deletes them")
	fs.IntVar(&o.maxFailures, "max-failures", 5, "consecutive failed logins a username or client id may make before it is locked")
	fs.DurationVar(&o.lockout, "lockout", time.Second, "first lockout after max-failures; each further failure doubles it")
	fs.DurationVar(&o.lockoutMax, "lockout-max", 15*time.Minute, "longest lockout")
	fs.Float64Var(&o.addressRate, "address-rate", 10, "credential attempts per second one source address may make on average")
	fs.IntVar(&o.addressBurst, "address-burst", 20, "credential attempts one source address may make at once")
}

// resolve fills the flags the command line did not set, from the
// environment and then the configuration file, and builds the logger.
// Precedence: flag > environment > file > default.
func (o *options) resolve(cmd *cobra.Command) error {
	path := o.configFile
	if path == "" {
		path, _ = o.lookupEnv(envFor("config"))
	}
	var file map[string]string
	if path != "" {
		var err error
		if file, err = loadConfigFile(path); err != nil {
			return err
		}
	}
	if err := o.applySettings(cmd, file); err != nil {
		return err
	}

	logger, err := newLogger(o.stderr, o.logFormat, o.logLevel)
	if err != nil {
		return err
	}
	o.logger = logger
	return nil
}

func isPostgres(database string) bool {
	return strings.HasPrefix(database, "postgres://") || strings.HasPrefix(database, "postgresql://")
}

// loadSecret reads the master secret from AUTHSERVER_SECRET, then the
// secret file. With SQLite and neither set, it creates <database>.secret
// (mode 0600) once and reuses it after.
func (o *options) loadSecret(ctx context.Context) error {
	if v, ok := o.lookupEnv("AUTHSERVER_SECRET"); ok && v != "" {
		if o.secretFile != "" {
			return errors.New("set either AUTHSERVER_SECRET or --secret-file (AUTHSERVER_SECRET_FILE), not both")
		}
		o.secretSource = "AUTHSERVER_SECRET"
		return o.setSecret([]byte(v), "AUTHSERVER_SECRET")
	}
	if o.secretFile != "" {
		b, err := os.ReadFile(o.secretFile) //nolint:gosec // the operator names this file
		if err != nil {
			return fmt.Errorf("read secret file: %w", err)
		}
		o.secretSource = o.secretFile
		return o.setSecret(bytes.TrimRight(b, "\r\n"), o.secretFile)
	}
	if isPostgres(o.database) {
		return errors.New("PostgreSQL needs a master secret: set AUTHSERVER_SECRET or --secret-file")
	}

	path := o.database + ".secret"
	o.secretSource = path
	b, err := os.ReadFile(path) //nolint:gosec // derived from the operator's database path
	if err == nil {
		return o.setSecret(bytes.TrimRight(b, "\r\n"), path)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read secret file: %w", err)
	}

	secret := []byte(hex.EncodeToString(randomBytes(32)))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) //nolint:gosec // derived from the operator's database path
	if errors.Is(err, fs.ErrExist) {
		// Another process created it first; use theirs.
		return o.loadSecret(ctx)
	}
	if err != nil {
		return fmt.Errorf("create secret file: %w", err)
	}
	_, err = f.Write(append(secret, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write secret file %s: %w", path, err)
	}
	o.logger.WarnContext(ctx, "generated a new master secret; back it up with the database, because keys and client secrets cannot be used without it", "path", path)
	o.secret = secret
	return nil
}

func (o *options) setSecret(secret []byte, source string) error {
	if len(secret) < 32 {
		return fmt.Errorf("master secret from %s is %d bytes, need at least 32", source, len(secret))
	}
	o.secret = secret
	return nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// openStore opens and migrates the database.
func (o *options) openStore(ctx context.Context) (*storage.Store, error) {
	store, err := storage.Open(ctx, o.storageConfig(o.database))
	if err != nil {
		return nil, err
	}
	if _, err := store.Migrate(ctx); err != nil {
		_ = store.Close()
		return nil, err
	}
	return store, nil
}

func (o *options) storageConfig(database string) storage.Config {
	return storage.Config{
		Database:        database,
		NewSession:      newSession,
		Logger:          o.logger,
		MaxOpenConns:    o.dbMaxOpenConns,
		MaxIdleConns:    o.dbMaxIdleConns,
		ConnMaxLifetime: o.dbConnMaxLifetime,
	}
}

// openKeys loads the signing keys, creating the first ones on an empty
// database.
func (o *options) openKeys(ctx context.Context, store *storage.Store, alg string) (*keys.Manager, error) {
	return keys.New(ctx, store, keys.Config{
		Algorithm: alg,
		Secret:    o.secret,
		// A retired key stays published while tokens it signed may still
		// be live, plus a margin for clock skew.
		PublishRetiredFor: o.accessTokenTTL + 5*time.Minute,
		Logger:            o.logger,
	})
}

func newSession() fosite.Session { return oauth.NewSession() }

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(contextHandler{slog.NewTextHandler(w, opts)}), nil
	case "json":
		return slog.New(contextHandler{slog.NewJSONHandler(w, opts)}), nil
	default:
		return nil, fmt.Errorf("log format %q: use text or json", format)
	}
}

// validateServe checks the serve settings without opening the database or
// creating anything, for `config check`.
func (o *options) validateServe(ctx context.Context) error {
	var errs []error
	switch o.signingAlg {
	case "RS256", "ES256", "EdDSA":
	default:
		errs = append(errs, fmt.Errorf("signing-alg %q: use RS256, ES256 or EdDSA", o.signingAlg))
	}
	if u, err := url.Parse(o.issuer); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("issuer %q must be an absolute http or https URL", o.issuer))
	}
	if o.accessTokenTTL <= 0 || o.refreshTokenTTL <= 0 {
		errs = append(errs, errors.New("access-token-ttl and refresh-token-ttl must be positive"))
	}
	if o.syncEvery < 0 {
		errs = append(errs, errors.New("sync-interval must not be negative; 0 turns the cache off"))
	}
	if o.statelessTokens && o.syncEvery == 0 {
		// Without the feed, every stateless token check would query the
		// revocation list in the database, which is correct but slower
		// than recording the tokens.
		o.logger.WarnContext(ctx, "stateless-client-tokens without a sync-interval checks every token's revocation in the database")
	}
	if _, err := oauth.NewGuard(o.guardConfig()); err != nil {
		errs = append(errs, err)
	}

	_, envSecret := o.lookupEnv("AUTHSERVER_SECRET")
	switch {
	case envSecret || o.secretFile != "":
		if err := o.loadSecret(ctx); err != nil {
			errs = append(errs, err)
		}
	case isPostgres(o.database):
		errs = append(errs, errors.New("PostgreSQL needs a master secret: set AUTHSERVER_SECRET or --secret-file"))
	default:
		path := o.database + ".secret"
		o.secretSource = path
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			o.secretSource = path + ", created on first start"
		} else if err := o.loadSecret(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (o *options) guardConfig() oauth.GuardConfig {
	return oauth.GuardConfig{
		MaxFailures:  o.maxFailures,
		LockoutBase:  o.lockout,
		LockoutMax:   o.lockoutMax,
		AddressRate:  o.addressRate,
		AddressBurst: o.addressBurst,
	}
}
