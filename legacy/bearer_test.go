package legacy

import (
	"errors"
	"strings"
	"testing"
)

func TestBearerToken(t *testing.T) {
	tests := []struct {
		name    string
		headers []string
		want    string
		wantErr string
	}{
		{"valid", []string{"Bearer abc.def.ghi"}, "abc.def.ghi", ""},
		{"lower-case scheme", []string{"bearer abc"}, "abc", ""},
		{"token68 padding", []string{"Bearer ab+/c=="}, "ab+/c==", ""},
		{"missing", nil, "", "no token"},
		{"two headers", []string{"Bearer a", "Bearer b"}, "", "malformed"},
		{"basic scheme", []string{"Basic YTpi"}, "", "malformed"},
		{"no token", []string{"Bearer "}, "", "malformed"},
		{"no space", []string{"Bearer"}, "", "malformed"},
		{"two spaces", []string{"Bearer  abc"}, "", "malformed"},
		{"comma", []string{"Bearer a,b"}, "", "malformed"},
		{"NUL", []string{"Bearer a\x00b"}, "", "malformed"},
		{"too long", []string{"Bearer " + strings.Repeat("a", maxBearerLength+1)}, "", "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := bearerToken(tt.headers)
			switch tt.wantErr {
			case "":
				if err != nil {
					t.Fatalf("error = %v, want none", err)
				}
			case "no token":
				if !errors.Is(err, errNoToken) {
					t.Fatalf("error = %v, want errNoToken", err)
				}
			default:
				if err == nil || errors.Is(err, errNoToken) {
					t.Fatalf("error = %v, want a malformed-header error", err)
				}
			}
			if got != tt.want {
				t.Errorf("token = %q, want %q", got, tt.want)
			}
		})
	}
}
