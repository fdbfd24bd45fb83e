package users

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Passkey is one registered WebAuthn credential of an account. The flags
// are those of the last successful use (backup_eligible: of registration,
// since a credential whose BE flag changes is refused).
type Passkey struct {
	ID                string    `json:"id"` // the credential id, base64url without padding
	UserID            string    `json:"user_id"`
	Name              string    `json:"name"`
	PublicKey         []byte    `json:"-"` // COSE key; public, but nobody outside needs it
	AttestationType   string    `json:"attestation_type"`
	AttestationFormat string    `json:"attestation_format"`
	Transports        []string  `json:"transports,omitempty"`
	Attachment        string    `json:"attachment,omitempty"` // "platform", "cross-platform" or unknown ("")
	UserPresent       bool      `json:"user_present"`
	UserVerified      bool      `json:"user_verified"`
	BackupEligible    bool      `json:"backup_eligible"`
	BackupState       bool      `json:"backup_state"`
	AAGUID            []byte    `json:"aaguid,omitempty"`
	SignCount         uint32    `json:"sign_count"`
	CloneWarning      bool      `json:"clone_warning"`
	CreatedAt         time.Time `json:"created_at"`
	LastUsedAt        time.Time `json:"last_used_at,omitzero"` // zero until the first sign-in
}

// PasskeyChallenge is a ceremony that has begun: Options go to the browser's
// navigator.credentials call, Token into an HttpOnly cookie that names the
// server-side state the finish step needs.
type PasskeyChallenge struct {
	Token     string          `json:"-"`
	Options   json.RawMessage `json:"options"`
	ExpiresAt time.Time       `json:"expires_at"`
}

// PasskeySignIn is a successful passwordless sign-in: who, with which
// passkey, and the amr and acr the new session gets.
type PasskeySignIn struct {
	User    *User
	Passkey *Passkey
	AMR     []string
	ACR     int
}

// Passkey errors. A response that fails verification for any reason —
// forged, replayed, wrong origin, no user verification — is one error, so
// that an attacker learns nothing from the difference.
var (
	ErrPasskeyCeremony  = errors.New("passkey ceremony unknown, expired or already used")
	ErrPasskeyRejected  = errors.New("passkey response rejected")
	ErrTooManyPasskeys  = errors.New("too many passkeys")
	ErrPasskeyNameValid = errors.New("invalid passkey name")
	ErrNoPasskeys       = errors.New("the account has no passkeys")
)

// Passkey limits.
const (
	MaxPasskeyName     = 64
	MaxPasskeysPerUser = 20
	// DefaultPasskeyCeremonyTimeout is how long a begun ceremony may be finished.
	DefaultPasskeyCeremonyTimeout = 5 * time.Minute
	// maxPasskeyResponseBytes bounds a browser's response before parsing;
	// real ones are a few kilobytes.
	maxPasskeyResponseBytes = 64 << 10
)

// Audit actions of passkeys (sign-in itself is audit.ActionLogin).
const (
	actionPasskeyRegister = "passkey.register"
	actionPasskeyRename   = "passkey.rename"
	actionPasskeyDelete   = "passkey.delete"
)

// Ceremony kinds, stored with their state so that a registration's cookie
// cannot finish a sign-in.
const (
	ceremonyRegister = "register"
	ceremonyLogin    = "login"
	// ceremonySecondFactor checks a passkey after the password, offering
	// only the account's own passkeys.
	ceremonySecondFactor = "second_factor"
)

// NormalizePasskeyName trims a name a person gave a passkey and checks it:
// 1 to 64 characters of valid UTF-8 without control characters.
func NormalizePasskeyName(s string) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "" || !utf8.ValidString(s):
		return "", fmt.Errorf("%w: must not be empty", ErrPasskeyNameValid)
	case utf8.RuneCountInString(s) > MaxPasskeyName:
		return "", fmt.Errorf("%w: must be at most %d characters", ErrPasskeyNameValid, MaxPasskeyName)
	case strings.ContainsFunc(s, unicode.IsControl):
		return "", fmt.Errorf("%w: must not contain control characters", ErrPasskeyNameValid)
	}
	return s, nil
}

// passkeyAMR names how a passkey sign-in proved who someone is (RFC 8176):
// a hardware key (hwk) when the authenticator is a separate device, else a
// software-protected key (swk); "user" when it verified the person (PIN or
// biometrics), which together with the key makes it multi-factor.
func passkeyAMR(attachment string, userVerified bool) []string {
	amr := []string{"swk"}
	if attachment == "cross-platform" {
		amr = []string{"hwk"}
	}
	if userVerified {
		amr = append(amr, "user", "mfa")
	}
	return amr
}

// passkeyACR is the assurance level of a passkey sign-in. A passkey of an
// account whose identity was already verified to level 2 is a
// phishing-resistant second factor on top of that, so the session reaches
// level 3; otherwise it has the account's level.
func passkeyACR(accountLevel int) int {
	if accountLevel >= 2 {
		return 3
	}
	return max(accountLevel, 1)
}
