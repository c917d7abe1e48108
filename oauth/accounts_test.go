package oauth

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateScopes(t *testing.T) {
	tests := []struct {
		name    string
		scopes  []string
		wantErr bool
	}{
		{"typical", []string{"strategy:read", "forge:write"}, false},
		{"none", nil, false},
		{"empty scope", []string{""}, true},
		{"space", []string{"a b"}, true},
		{"quote", []string{`a"b`}, true},
		{"backslash", []string{`a\b`}, true},
		{"non-ASCII", []string{"scopé"}, true},
		{"too long", []string{strings.Repeat("a", MaxScopeLength+1)}, true},
		{"too many", make([]string, MaxScopes+1), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateScopes(tt.scopes)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, want error %t", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrInvalidInput) {
				t.Errorf("error %v does not wrap ErrInvalidInput", err)
			}
		})
	}
}

func TestValidateClientName(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		wantErr bool
	}{
		{"plain", "backtest-runner", false},
		{"unicode", "Rückrechnung 回测", false},
		{"maximum length", strings.Repeat("é", MaxClientNameLength), false},
		{"empty", "", true},
		{"blank", "   ", true},
		{"too long", strings.Repeat("a", MaxClientNameLength+1), true},
		{"newline", "a\nb", true},
		{"NUL", "a\x00b", true},
		{"bidi override", "a\u202eb", true},
		{"invalid UTF-8", "a\xffb", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := validateClientName(tt.input); (err != nil) != tt.wantErr {
				t.Errorf("error = %v, want error %t", err, tt.wantErr)
			}
		})
	}
}

func TestValidateEmail(t *testing.T) {
	tests := []struct {
		input   string
		wantErr bool
	}{
		{"", false},
		{"ops@example.com", false},
		{"not an email", true},
		{"Ops <ops@example.com>", true},
		{"a@b@c", true},
		{strings.Repeat("a", MaxEmailLength) + "@example.com", true},
	}
	for _, tt := range tests {
		t.Run(tt.input, func(t *testing.T) {
			if err := validateEmail(tt.input); (err != nil) != tt.wantErr {
				t.Errorf("error = %v, want error %t", err, tt.wantErr)
			}
		})
	}
}

func TestValidateGrantTypes(t *testing.T) {
	tests := []struct {
		name    string
		grants  []string
		wantErr bool
	}{
		{"client credentials", []string{"client_credentials"}, false},
		{"password and refresh", []string{"password", "refresh_token"}, false},
		{"none", []string{}, true},
		{"unknown", []string{"authorization_code"}, true},
		{"refresh alone", []string{"refresh_token"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := validateGrantTypes(tt.grants); (err != nil) != tt.wantErr {
				t.Errorf("error = %v, want error %t", err, tt.wantErr)
			}
		})
	}
}
