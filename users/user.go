package users

import (
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Kind is what sort of party an account stands for.
type Kind string

// The kinds of account.
const (
	KindCitizen    Kind = "citizen"    // 自然人, a natural person
	KindEnterprise Kind = "enterprise" // 法人, a legal person
	KindStaff      Kind = "staff"      // 工作人员, government staff
)

// ParseKind accepts "citizen", "enterprise" or "staff".
func ParseKind(s string) (Kind, error) {
	switch k := Kind(strings.ToLower(strings.TrimSpace(s))); k {
	case KindCitizen, KindEnterprise, KindStaff:
		return k, nil
	}
	return "", fmt.Errorf("unknown account type %q: use citizen, enterprise or staff", s)
}

// Status says whether an account may sign in.
type Status string

// The statuses of an account.
const (
	StatusActive   Status = "active"
	StatusDisabled Status = "disabled"
	// StatusDeleted is an account deleted by an administrator: it cannot
	// sign in, is left out of searches, and its personal data is erased
	// after the retention. Only SQLStore.SoftDelete sets it.
	StatusDeleted Status = "deleted"
)

// ErrDeleted means an account is deleted and can no longer be changed.
var ErrDeleted = errors.New("account deleted")

// Field limits. Usernames are ASCII, so their limit is in bytes; the display
// name's is in characters (runes); the e-mail limit is RFC 5321's, in bytes.
const (
	MaxUsername    = 64
	MaxDisplayName = 64
	MaxEmail       = 254
)

// User is one account. Phone and IDNumber are plain in memory only; the
// store keeps them encrypted.
type User struct {
	ID             string    `json:"id"`
	Username       string    `json:"username"`
	Kind           Kind      `json:"kind"`
	DisplayName    string    `json:"display_name"`
	Email          string    `json:"email,omitempty"`
	Phone          string    `json:"phone,omitempty"`
	IDNumber       string    `json:"id_number,omitempty"` // resident ID number (GB 11643)
	IsAdmin        bool      `json:"is_admin"`
	Status         Status    `json:"status"`
	AssuranceLevel int       `json:"assurance_level"`
	PasswordHash   string    `json:"-"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
	// DeletedAt is when an administrator deleted the account (Status is
	// then StatusDeleted); ErasedAt when its personal data was erased,
	// leaving only the tombstone.
	DeletedAt time.Time `json:"deleted_at,omitzero"`
	ErasedAt  time.Time `json:"erased_at,omitzero"`
}

// FieldError names one invalid field and why.
type FieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// ValidationError lists every invalid field of an input, so that a form or
// an API client can fix them all at once.
type ValidationError struct {
	Fields []FieldError `json:"fields"`
}

func (v *ValidationError) Error() string {
	parts := make([]string, len(v.Fields))
	for i, f := range v.Fields {
		parts[i] = f.Field + ": " + f.Reason
	}
	return "invalid account: " + strings.Join(parts, "; ")
}

func (v *ValidationError) add(field string, err error) {
	if err != nil {
		v.Fields = append(v.Fields, FieldError{Field: field, Reason: err.Error()})
	}
}

var usernamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// NormalizeUsername lower-cases a username and checks it: 3–64 characters
// from a-z, 0-9, '.', '_' and '-', starting with a letter or digit. A
// username may not look like a phone number or a resident ID number, so that
// "sign in with username, phone or ID number" is never ambiguous.
func NormalizeUsername(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	switch {
	case len(s) < 3 || len(s) > MaxUsername:
		return "", fmt.Errorf("must be 3 to %d characters", MaxUsername)
	case !usernamePattern.MatchString(s):
		return "", errors.New("may hold only a-z, 0-9, '.', '_' and '-', starting with a letter or digit")
	}
	if _, err := NormalizePhone(s); err == nil {
		return "", errors.New("must not be a phone number")
	}
	if looksLikeIDNumber(s) {
		return "", errors.New("must not be an ID number")
	}
	return s, nil
}

// normalizeAccountName is NormalizeUsername, except that an enterprise's
// account may be named by its unified social credit code even when the code
// is all digits but the last, like a resident ID number: many are, and
// sign-in tries such a name as an ID number first and then as a username.
func normalizeAccountName(s string, kind Kind) (string, error) {
	if kind == KindEnterprise {
		if code, err := NormalizeCreditCode(s); err == nil {
			return strings.ToLower(code), nil
		}
	}
	return NormalizeUsername(s)
}

func looksLikeIDNumber(s string) bool {
	if len(s) != 18 {
		return false
	}
	for i := 0; i < 17; i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// NormalizePhone accepts a mainland mobile number with an optional +86 or
// 0086 prefix and spaces or dashes, and returns its 11 digits.
func NormalizePhone(s string) (string, error) {
	s = strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, strings.TrimSpace(s))
	s = strings.TrimPrefix(strings.TrimPrefix(s, "+86"), "0086")
	if len(s) != 11 || s[0] != '1' {
		return "", errors.New("must be an 11-digit mainland mobile number starting with 1")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return "", errors.New("must be an 11-digit mainland mobile number starting with 1")
		}
	}
	return s, nil
}

// MaskPhone shows the first three and last four digits: 138****5678.
func MaskPhone(s string) string {
	if len(s) != 11 {
		return strings.Repeat("*", len(s))
	}
	return s[:3] + "****" + s[7:]
}

// checkDisplayName accepts up to 64 characters of valid UTF-8 without control characters.
func checkDisplayName(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("is not valid UTF-8")
	}
	if utf8.RuneCountInString(s) > MaxDisplayName {
		return fmt.Errorf("must be at most %d characters", MaxDisplayName)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return errors.New("must not contain control characters")
		}
	}
	return nil
}

// NormalizeEmail lower-cases and checks an address ("" is allowed).
func NormalizeEmail(s string) (string, error) {
	// Checked before lower-casing, which would turn invalid bytes into U+FFFD.
	if !utf8.ValidString(s) {
		return "", errors.New("is not valid UTF-8")
	}
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return "", nil
	}
	if len(s) > MaxEmail {
		return "", fmt.Errorf("must be a valid address of at most %d characters", MaxEmail)
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return "", errors.New("must be a plain address such as name@example.org")
	}
	return s, nil
}

// Validate reports what Normalize would, naming every invalid field in a
// *ValidationError, but leaves u as it is: for callers that check input
// before deciding to store it.
func (u *User) Validate() error {
	c := *u
	return c.Normalize()
}

// Normalize puts the user's fields in canonical form and checks them all,
// returning a *ValidationError that names every invalid field.
func (u *User) Normalize() error {
	v := &ValidationError{}
	var err error
	if u.Username, err = normalizeAccountName(u.Username, u.Kind); err != nil {
		v.add("username", err)
	}
	if _, err := ParseKind(string(u.Kind)); err != nil {
		v.add("kind", err)
	}
	u.DisplayName = strings.TrimSpace(u.DisplayName)
	v.add("display_name", checkDisplayName(u.DisplayName))
	if u.Email, err = NormalizeEmail(u.Email); err != nil {
		v.add("email", err)
	}
	if u.Phone != "" {
		if u.Phone, err = NormalizePhone(u.Phone); err != nil {
			v.add("phone", err)
		}
	}
	if u.IDNumber != "" {
		if u.IDNumber, err = NormalizeIDNumber(u.IDNumber); err != nil {
			v.add("id_number", err)
		}
	}
	if u.Status == "" {
		u.Status = StatusActive
	}
	if u.Status != StatusActive && u.Status != StatusDisabled {
		v.add("status", errors.New("must be active or disabled"))
	}
	if u.AssuranceLevel == 0 {
		u.AssuranceLevel = 1
	}
	if u.AssuranceLevel < 1 || u.AssuranceLevel > 3 {
		v.add("assurance_level", errors.New("must be 1, 2 or 3"))
	}
	if len(v.Fields) > 0 {
		return v
	}
	return nil
}
