package oauth

import (
	"encoding/base64"
	"testing"

	"github.com/quanux/authserver/storage"
)

func TestTokenEpochs(t *testing.T) {
	client := &storage.Client{ID: "client_a", OwnerID: "user_a", TokenEpoch: 3, OwnerTokenEpoch: 7}
	for _, stateless := range []bool{false, true} {
		jti := clientTokenJTI(client, stateless)
		clientEpoch, ownerEpoch, gotStateless, ok := tokenEpochs(jti)
		if !ok || clientEpoch != 3 || ownerEpoch != 7 || gotStateless != stateless {
			t.Errorf("tokenEpochs(%q) = %d, %d, %v, %v; want 3, 7, %v, true", jti, clientEpoch, ownerEpoch, gotStateless, ok, stateless)
		}
	}

	for _, jti := range []string{
		"", "0123456789abcdef", "st.", "st.1.2.", "st.1.2", "st.1.2.x.y", "st.-1.2.x", "st.1.a.x",
		"cc.1.2", "xx.1.2.abc", "st.99999999999999999999.1.x",
	} {
		if _, _, _, ok := tokenEpochs(jti); ok {
			t.Errorf("tokenEpochs(%q) accepted a malformed jti", jti)
		}
	}
}

func TestCheckEpochs(t *testing.T) {
	client := &storage.Client{ID: "client_a", OwnerID: "user_a", TokenEpoch: 1, OwnerTokenEpoch: 1}
	current := clientTokenJTI(client, false)
	if err := checkEpochs(current, "user_a", client); err != nil {
		t.Errorf("current token rejected: %v", err)
	}
	if err := checkEpochs("0123456789abcdef", "user_b", client); err != nil {
		t.Errorf("a jti without epochs must pass, got %v", err)
	}
	if err := checkEpochs(current, "user_b", client); err == nil {
		t.Error("token of another owner accepted")
	}

	rotated := *client
	rotated.TokenEpoch++
	if err := checkEpochs(current, "user_a", &rotated); err == nil {
		t.Error("token from before the client's revocation accepted")
	}
	ownerRevoked := *client
	ownerRevoked.OwnerTokenEpoch++
	if err := checkEpochs(current, "user_a", &ownerRevoked); err == nil {
		t.Error("token from before the owner's revocation accepted")
	}
}

func TestIsStateless(t *testing.T) {
	payload := func(json string) string { return base64.RawURLEncoding.EncodeToString([]byte(json)) }
	tests := []struct {
		token string
		want  bool
	}{
		{"h." + payload(`{"jti":"st.0.0.abc"}`) + ".s", true},
		{"h." + payload(`{"jti":"cc.0.0.abc"}`) + ".s", false},
		{"h." + payload(`{"jti":"0123"}`) + ".s", false},
		{"h." + payload(`{"jti":7}`) + ".s", false},
		{"h." + payload(`not json`) + ".s", false},
		{"h.!!!.s", false},
		{"no-dots", false},
		{"h." + payload(`{"jti":"st.0.0.abc"}`), false},
	}
	for _, tt := range tests {
		if got := isStateless(tt.token); got != tt.want {
			t.Errorf("isStateless(%q) = %v, want %v", tt.token, got, tt.want)
		}
	}
}
