package users

import (
	"bufio"
	"crypto/rand"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Argon2Params are the argon2id cost settings.
type Argon2Params struct {
	MemoryKiB   uint32
	Iterations  uint32
	Parallelism uint8
}

// DefaultArgon2Params follow OWASP's minimum for argon2id: 19 MiB, 2 passes, 1 lane.
var DefaultArgon2Params = Argon2Params{MemoryKiB: 19 * 1024, Iterations: 2, Parallelism: 1}

const (
	saltLen = 16
	keyLen  = 32
)

// ErrMalformedHash means a stored hash is not an argon2id PHC string.
var ErrMalformedHash = errors.New("stored password hash is malformed")

// PasswordHasher hashes and verifies passwords with argon2id, in the PHC
// string format $argon2id$v=19$m=…,t=…,p=…$salt$hash.
type PasswordHasher struct {
	params Argon2Params
	// dummy is a hash of nothing, verified when the account does not exist.
	// It is made on first use: hashing at start-up would cost every start
	// tens of milliseconds and leave 19 MiB of freed memory in the RSS.
	dummy     string
	dummyOnce sync.Once
	// slots bounds how many hashes run at once: each takes MemoryKiB of
	// memory, so a burst of sign-ins must queue rather than exhaust RAM,
	// and more hashes than cores only slow each other down.
	slots chan struct{}
}

// NewPasswordHasher returns a hasher using p for new hashes.
func NewPasswordHasher(p Argon2Params) *PasswordHasher {
	h := &PasswordHasher{params: p, slots: make(chan struct{}, runtime.GOMAXPROCS(0))}
	return h
}

// idKey runs argon2id in one of the hasher's slots.
func (h *PasswordHasher) idKey(password, salt []byte, p Argon2Params, n uint32) []byte {
	h.slots <- struct{}{}
	defer func() { <-h.slots }()
	return argon2.IDKey(password, salt, p.Iterations, p.MemoryKiB, p.Parallelism, n)
}

// Hash returns the PHC string of password under a fresh random salt.
func (h *PasswordHasher) Hash(password string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	p := h.params
	key := h.idKey([]byte(password), salt, p, keyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Iterations, p.Parallelism,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// Verify checks password against a PHC string in constant time. needsRehash
// reports that the hash was made with other parameters than the current
// ones, so the caller should store a new hash after a successful login.
func (h *PasswordHasher) Verify(password, phc string) (ok, needsRehash bool, err error) {
	p, salt, want, err := parsePHC(phc)
	if err != nil {
		return false, false, err
	}
	got := h.idKey([]byte(password), salt, p, uint32(len(want)))
	ok = subtle.ConstantTimeCompare(got, want) == 1
	return ok, ok && p != h.params, nil
}

// DummyVerify spends the work of one verification, so that a login for an
// account that does not exist takes as long as one for an account that does.
func (h *PasswordHasher) DummyVerify(password string) {
	h.dummyOnce.Do(func() { h.dummy, _ = h.Hash("dummy password for unknown accounts") })
	_, _, _ = h.Verify(password, h.dummy)
}

func parsePHC(s string) (Argon2Params, []byte, []byte, error) {
	var p Argon2Params
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return p, nil, nil, ErrMalformedHash
	}
	var m, t uint32
	var par uint8
	if n, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &par); err != nil || n != 3 || m < 8 || t < 1 || par < 1 {
		return p, nil, nil, ErrMalformedHash
	}
	if m > 4*1024*1024 || t > 100 {
		return p, nil, nil, ErrMalformedHash // refuse hashes that would cost a denial of service
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return p, nil, nil, ErrMalformedHash
	}
	key, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(key) < 16 || len(key) > 64 {
		return p, nil, nil, ErrMalformedHash
	}
	return Argon2Params{MemoryKiB: m, Iterations: t, Parallelism: par}, salt, key, nil
}

// Password policy errors.
var (
	ErrPasswordTooShort   = errors.New("password must be at least 8 characters")
	ErrPasswordTooLong    = errors.New("password must be at most 128 characters")
	ErrPasswordEncoding   = errors.New("password is not valid UTF-8")
	ErrPasswordCommon     = errors.New("password is one of the most common passwords; choose another")
	ErrPasswordIdentifier = errors.New("password must not be the username or phone number")
)

// Password length limits in characters.
const (
	MinPasswordLength = 8
	MaxPasswordLength = 128
)

//go:embed common-passwords.txt
var commonPasswordsFile string

// commonPasswords is parsed once from the embedded list; it is read-only.
var commonPasswords = func() map[string]bool {
	m := map[string]bool{}
	s := bufio.NewScanner(strings.NewReader(commonPasswordsFile))
	for s.Scan() {
		if w := strings.TrimSpace(s.Text()); w != "" && !strings.HasPrefix(w, "#") {
			m[strings.ToLower(w)] = true
		}
	}
	return m
}()

// CheckPasswordPolicy enforces the password rules: 8 to 128 characters,
// valid UTF-8, not one of the most common passwords, and not the username or
// the phone number.
func CheckPasswordPolicy(password, username, phone string) error {
	if !utf8.ValidString(password) {
		return ErrPasswordEncoding
	}
	n := utf8.RuneCountInString(password)
	switch {
	case n < MinPasswordLength:
		return ErrPasswordTooShort
	case n > MaxPasswordLength:
		return ErrPasswordTooLong
	}
	lower := strings.ToLower(password)
	if commonPasswords[lower] {
		return ErrPasswordCommon
	}
	if (username != "" && lower == strings.ToLower(username)) || (phone != "" && password == phone) {
		return ErrPasswordIdentifier
	}
	if p, err := NormalizePhone(phone); err == nil && (strings.Contains(password, p) && n <= len(p)+2 || samePhone(password, p)) {
		return ErrPasswordIdentifier
	}
	return nil
}

// samePhone reports whether password is the phone number in another
// spelling, such as "+86 138-1234-5678".
func samePhone(password, phone string) bool {
	p, err := NormalizePhone(password)
	return err == nil && p == phone
}
