package oauth

import (
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// fastParams keep the tests quick; production parameters are tested for
// their encoding only.
var fastParams = Argon2Params{Memory: 64, Time: 1, Threads: 1}

func TestPasswordHashFormat(t *testing.T) {
	h, err := NewPasswordHasher(Argon2Params{})
	if err != nil {
		t.Fatal(err)
	}
	hash, err := h.Hash("pw")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(hash, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash %q is not a PHC argon2id string with the default parameters", hash)
	}
	again, err := h.Hash("pw")
	if err != nil {
		t.Fatal(err)
	}
	if again == hash {
		t.Error("two hashes of one password are equal; the salt is not random")
	}
}

func TestPasswordVerify(t *testing.T) {
	h, err := NewPasswordHasher(fastParams)
	if err != nil {
		t.Fatal(err)
	}
	weak, err := NewPasswordHasher(Argon2Params{Memory: 32, Time: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	current, _ := h.Hash("right")
	weaker, _ := weak.Hash("right")
	long := strings.Repeat("x", MaxPasswordLength)
	longHash, err := h.Hash(long)
	if err != nil {
		t.Fatal(err)
	}
	bcryptHash, err := bcrypt.GenerateFromPassword([]byte("right"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		hash       string
		password   string
		wantOK     bool
		wantRehash bool
		wantErr    bool
	}{
		{"right password", current, "right", true, false, false},
		{"wrong password", current, "wrong", false, false, false},
		{"weaker parameters", weaker, "right", true, true, false},
		{"bcrypt import", string(bcryptHash), "right", true, true, false},
		{"bcrypt wrong", string(bcryptHash), "wrong", false, false, false},
		{"maximum length", longHash, long, true, false, false},
		{"one byte differs at the end", longHash, long[:len(long)-1] + "y", false, false, false},
		{"over the maximum", longHash, long + "x", false, false, false},
		{"unknown scheme", "$md5$abc", "right", false, false, true},
		{"absurd memory", "$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHQ$" + strings.Repeat("A", 43), "right", false, false, true},
		{"truncated", "$argon2id$v=19$m=64", "right", false, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, rehash, err := h.Verify(tt.hash, tt.password)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, want error %t", err, tt.wantErr)
			}
			if ok != tt.wantOK {
				t.Errorf("ok = %t, want %t", ok, tt.wantOK)
			}
			if rehash != tt.wantRehash {
				t.Errorf("rehash = %t, want %t", rehash, tt.wantRehash)
			}
		})
	}
}

func TestPasswordTooLong(t *testing.T) {
	h, err := NewPasswordHasher(fastParams)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Hash(strings.Repeat("x", MaxPasswordLength+1)); err == nil {
		t.Error("a password over the maximum was hashed")
	}
}

func TestPasswordHasherConcurrencyLimit(t *testing.T) {
	h, err := NewPasswordHasher(fastParams)
	if err != nil {
		t.Fatal(err)
	}
	h.wait = 50 * time.Millisecond

	var releases []func()
	for i := range cap(h.slots) {
		release, err := h.Acquire(t.Context())
		if err != nil {
			t.Fatalf("slot %d of %d: %v", i+1, cap(h.slots), err)
		}
		releases = append(releases, release)
	}
	if _, err := h.Acquire(t.Context()); !errors.Is(err, ErrBusy) {
		t.Fatalf("Acquire with every slot taken: err = %v, want ErrBusy", err)
	}

	// A slot freed while a caller waits goes to that caller.
	go func() {
		time.Sleep(10 * time.Millisecond)
		releases[0]()
	}()
	release, err := h.Acquire(t.Context())
	if err != nil {
		t.Fatalf("Acquire while a slot is freed: %v", err)
	}
	release()
}
