package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// maxBodyBytes bounds how much of a response body is read. Token and
// introspection responses are a few KiB.
const maxBodyBytes = 1 << 20

// caller sends the requests of one worker. A caller is used by one
// goroutine only.
type caller interface {
	// prepare runs before each measured call and is not timed. It returns
	// an error when the worker cannot send its next request.
	prepare(ctx context.Context) error
	// call sends one request and checks the response.
	call(ctx context.Context) error
}

// statusError is a response with a status other than 2xx, or a 2xx
// response whose body is not what the workload expects.
type statusError struct {
	status int
	body   string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("status %d: %s", e.status, e.body)
}

// newCaller returns the caller of one worker of the configured workload.
// The token to introspect is shared by all workers.
func newCaller(c *config, client *http.Client, introspectToken string) caller {
	base := requester{client: client, cfg: c}
	switch c.workload {
	case workloadClientCredentials:
		form := url.Values{"grant_type": {"client_credentials"}}
		if c.scope != "" {
			form.Set("scope", c.scope)
		}
		return &formCaller{requester: base, url: c.baseURL + "/oauth2/token", form: form.Encode(), clientID: c.clientID, clientSecret: c.clientSecret}
	case workloadIntrospect:
		form := url.Values{"token": {introspectToken}}
		return &formCaller{requester: base, url: c.introspectURL, form: form.Encode(), clientID: c.clientID, clientSecret: c.clientSecret, wantActive: true}
	case workloadPassword:
		return &formCaller{requester: base, url: c.baseURL + "/oauth2/token", form: passwordForm(c).Encode(), clientID: c.clientID, clientSecret: c.clientSecret}
	case workloadRefresh:
		return &refreshCaller{requester: base}
	case workloadLogin:
		body, _ := json.Marshal(map[string]string{"username": c.username, "password": c.password})
		return &loginCaller{requester: base, body: body}
	case workloadJWKS:
		return &getCaller{requester: base, url: c.baseURL + "/.well-known/jwks.json"}
	}
	panic("loadgen: unknown workload " + c.workload) // validate rejects it first
}

func passwordForm(c *config) url.Values {
	form := url.Values{"grant_type": {"password"}, "username": {c.username}, "password": {c.password}}
	if c.scope != "" {
		form.Set("scope", c.scope)
	}
	return form
}

// requester sends one request and reads the whole response, so the
// connection can be reused.
type requester struct {
	client *http.Client
	cfg    *config
}

// send returns the body of a 2xx response, or a *statusError.
func (r requester) send(req *http.Request) ([]byte, error) {
	resp, err := r.client.Do(req) //nolint:gosec // the target is the URL the operator passed in --url
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes))
	if err != nil {
		return nil, fmt.Errorf("read response body: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, &statusError{status: resp.StatusCode, body: string(body)}
	}
	return body, nil
}

// postForm sends a form with HTTP Basic authentication when clientID is
// not empty.
func (r requester) postForm(ctx context.Context, target, form, clientID, clientSecret string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(form)) //nolint:gosec // the target comes from --url or --introspect-url
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if clientID != "" {
		// RFC 6749 §2.3.1: the id and secret are form-encoded before
		// they go into the Basic credentials.
		req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(clientSecret))
	}
	return r.send(req)
}

// formCaller posts the same form on every call.
type formCaller struct {
	requester
	url          string
	form         string
	clientID     string
	clientSecret string
	// wantActive makes a 2xx response without "active": true an error,
	// because introspection returns 200 for an inactive token too.
	wantActive bool
}

func (f *formCaller) prepare(context.Context) error { return nil }

func (f *formCaller) call(ctx context.Context) error {
	body, err := f.postForm(ctx, f.url, f.form, f.clientID, f.clientSecret)
	if err != nil || !f.wantActive {
		return err
	}
	var reply struct {
		Active bool `json:"active"`
	}
	if err := json.Unmarshal(body, &reply); err != nil || !reply.Active {
		return &statusError{status: http.StatusOK, body: string(body)}
	}
	return nil
}

// refreshCaller keeps a chain of refresh tokens: each call spends the
// current one and keeps the one the response returns.
type refreshCaller struct {
	requester
	refreshToken string
}

// prepare obtains a first refresh token with the password grant when the
// worker has none: at start, and after a failed refresh broke the chain.
func (f *refreshCaller) prepare(ctx context.Context) error {
	if f.refreshToken != "" {
		return nil
	}
	c := f.cfg
	token, err := f.tokenRequest(ctx, passwordForm(c))
	if err != nil {
		return fmt.Errorf("obtain a refresh token with the password grant: %w", err)
	}
	f.refreshToken = token
	return nil
}

func (f *refreshCaller) call(ctx context.Context) error {
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {f.refreshToken}}
	token, err := f.tokenRequest(ctx, form)
	f.refreshToken = token
	return err
}

// tokenRequest returns the refresh token of a token response.
func (f *refreshCaller) tokenRequest(ctx context.Context, form url.Values) (string, error) {
	body, err := f.postForm(ctx, f.cfg.baseURL+"/oauth2/token", form.Encode(), f.cfg.clientID, f.cfg.clientSecret)
	if err != nil {
		return "", err
	}
	var reply struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal(body, &reply); err != nil || reply.RefreshToken == "" {
		return "", &statusError{status: http.StatusOK, body: "no refresh_token in the response: " + string(body)}
	}
	return reply.RefreshToken, nil
}

// loginCaller posts the legacy JSON login.
type loginCaller struct {
	requester
	body []byte
}

func (f *loginCaller) prepare(context.Context) error { return nil }

func (f *loginCaller) call(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.cfg.baseURL+"/api/auth/login", bytes.NewReader(f.body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	_, err = f.send(req)
	return err
}

// getCaller fetches one URL.
type getCaller struct {
	requester
	url string
}

func (f *getCaller) prepare(context.Context) error { return nil }

func (f *getCaller) call(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url, nil)
	if err != nil {
		return err
	}
	_, err = f.send(req)
	return err
}

// obtainToken returns an access token from the client-credentials grant,
// for the introspect workload.
func obtainToken(ctx context.Context, c *config, client *http.Client) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}}
	if c.scope != "" {
		form.Set("scope", c.scope)
	}
	r := requester{client: client, cfg: c}
	body, err := r.postForm(ctx, c.baseURL+"/oauth2/token", form.Encode(), c.tokenClientID, c.tokenClientSecret)
	if err != nil {
		return "", fmt.Errorf("obtain a token to introspect as %s: %w", c.tokenClientID, err)
	}
	var reply struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &reply); err != nil || reply.AccessToken == "" {
		return "", errors.New("obtain a token to introspect: the response has no access_token")
	}
	return reply.AccessToken, nil
}
