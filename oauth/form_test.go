package oauth

import (
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseBasic(t *testing.T) {
	encode := func(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name       string
		headers    []string
		wantID     string
		wantSecret string
		wantErr    bool
	}{
		{"plain", []string{encode("client_1:secret_2")}, "client_1", "secret_2", false},
		{"lower-case scheme", []string{"basic " + base64.StdEncoding.EncodeToString([]byte("a:b"))}, "a", "b", false},
		{"form-encoded once", []string{encode("a%3Ab:c%2Bd+e")}, "a:b", "c+d e", false},
		{"colon in secret", []string{encode("a:b:c")}, "a", "b:c", false},
		{"empty secret", []string{encode("a:")}, "a", "", false},
		{"empty id", []string{encode(":b")}, "", "", true},
		{"no colon", []string{encode("ab")}, "", "", true},
		{"bad escape", []string{encode("a%zz:b")}, "", "", true},
		{"not base64", []string{"Basic !!!"}, "", "", true},
		{"unpadded base64", []string{"Basic " + base64.RawStdEncoding.EncodeToString([]byte("a:bc"))}, "", "", true},
		{"bearer scheme", []string{"Bearer abc"}, "", "", true},
		{"two headers", []string{encode("a:b"), encode("a:b")}, "", "", true},
		{"NUL in secret", []string{encode("a:b%00")}, "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, secret, err := parseBasic(tt.headers)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, want error %t", err, tt.wantErr)
			}
			if id != tt.wantID || secret != tt.wantSecret {
				t.Errorf("got (%q, %q), want (%q, %q)", id, secret, tt.wantID, tt.wantSecret)
			}
		})
	}
}

func FuzzParseBasic(f *testing.F) {
	for _, seed := range []string{
		"Basic YTpi", "basic YTpi", "Basic ", "Basic Og==", "Basic YSUzQWI6YyUyQmQrZQ==", "Bearer x", "Basic !!!",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		id, secret, err := parseBasic([]string{header})
		if err != nil {
			return
		}
		if id == "" || !utf8.ValidString(id) || !utf8.ValidString(secret) || strings.ContainsRune(id+secret, 0) {
			t.Fatalf("accepted unclean credentials %q, %q", id, secret)
		}
		// Encoding what was parsed and parsing again must give the same
		// values: one form-decoding, no more.
		again := "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
		id2, secret2, err := parseBasic([]string{again})
		if err != nil || id2 != id || secret2 != secret {
			t.Fatalf("round trip of (%q, %q) gave (%q, %q, %v)", id, secret, id2, secret2, err)
		}
	})
}

func TestParseStrictForm(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    url.Values
		wantErr bool
	}{
		{"typical", "grant_type=client_credentials&scope=a+b", url.Values{"grant_type": {"client_credentials"}, "scope": {"a b"}}, false},
		{"empty pairs skipped", "a=1&&b=2&", url.Values{"a": {"1"}, "b": {"2"}}, false},
		{"key without value", "a", url.Values{"a": {""}}, false},
		{"repeated", "a=1&a=2", nil, true},
		{"repeated after decoding", "a=1&%61=2", nil, true},
		{"bad escape", "a=%zz", nil, true},
		{"NUL", "a=%00", nil, true},
		{"invalid UTF-8", "a=%ff", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ferr := parseStrictForm(tt.body)
			if (ferr != nil) != tt.wantErr {
				t.Fatalf("error = %v, want error %t", ferr, tt.wantErr)
			}
			if !tt.wantErr && got.Encode() != tt.want.Encode() {
				t.Errorf("form = %v, want %v", got, tt.want)
			}
		})
	}
}

func FuzzParseStrictForm(f *testing.F) {
	for _, seed := range []string{"grant_type=client_credentials&scope=a+b", "a=1&a=2", "a=%zz", "a=%00", "=&=", "%61=1&a=2"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		form, ferr := parseStrictForm(body)
		if ferr != nil {
			return
		}
		for k, v := range form {
			if len(v) != 1 {
				t.Fatalf("parameter %q has %d values", k, len(v))
			}
			if !cleanText(k) || !cleanText(v[0]) {
				t.Fatalf("parameter %q=%q is not clean text", k, v[0])
			}
		}
		again, ferr := parseStrictForm(form.Encode())
		if ferr != nil || again.Encode() != form.Encode() {
			t.Fatalf("re-encoded form %q parses as %v, %v", form.Encode(), again, ferr)
		}
	})
}
