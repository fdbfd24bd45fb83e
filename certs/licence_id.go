package certs

import (
	"errors"
	"fmt"
	"strings"

	"github.com/govsso/sso/users"
)

// LicencePrefix starts every electronic licence identifier (GB/T 36904).
const LicencePrefix = "1.2.156.3005.2."

// ErrLicenceIdentifier means a licence identifier is malformed or its check
// character is wrong; the wrapped message names the problem.
var ErrLicenceIdentifier = errors.New("certs: malformed licence identifier")

// mod3736Alphabet gives each character its ISO 7064 value: 0-9 then A-Z.
const mod3736Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

// LicenceIdentifierParts are the fields of a licence identifier after the prefix.
type LicenceIdentifierParts struct {
	TypeCode         string // defining body's credit code + 3-digit sequence
	IssuerCreditCode string // the issuing authority's unified social credit code
	Serial           string
	Version          string // 3 digits, "001" for a first issue
	Check            byte   // ISO 7064 MOD 37,36 over the fields above
}

// String writes the identifier in its canonical dotted form.
func (p LicenceIdentifierParts) String() string {
	return LicencePrefix + strings.Join([]string{p.TypeCode, p.IssuerCreditCode, p.Serial, p.Version, string(p.Check)}, ".")
}

// LicenceIdentifier builds `1.2.156.3005.2.<type>.<issuer>.<serial>.<version>.<check>`,
// the check character being ISO 7064 MOD 37,36 over the four fields with
// the dots removed.
func LicenceIdentifier(typeCode, issuerCreditCode, serial, version string) (string, error) {
	p := LicenceIdentifierParts{TypeCode: strings.ToUpper(typeCode), IssuerCreditCode: strings.ToUpper(issuerCreditCode),
		Serial: strings.ToUpper(serial), Version: version}
	if err := p.checkFields(); err != nil {
		return "", err
	}
	p.Check = mod3736Check(p.TypeCode + p.IssuerCreditCode + p.Serial + p.Version)
	return p.String(), nil
}

// ParseLicenceIdentifier splits an identifier and checks every field and
// the check character; lower case is accepted and returned upper-cased.
func ParseLicenceIdentifier(s string) (LicenceIdentifierParts, error) {
	s = strings.ToUpper(strings.TrimSpace(s))
	rest, ok := strings.CutPrefix(s, LicencePrefix)
	if !ok {
		return LicenceIdentifierParts{}, idError("must start with %s", LicencePrefix)
	}
	f := strings.Split(rest, ".")
	if len(f) != 5 {
		return LicenceIdentifierParts{}, idError("needs 5 fields after the prefix (type, issuer, serial, version, check), found %d", len(f))
	}
	p := LicenceIdentifierParts{TypeCode: f[0], IssuerCreditCode: f[1], Serial: f[2], Version: f[3]}
	if err := p.checkFields(); err != nil {
		return LicenceIdentifierParts{}, err
	}
	if len(f[4]) != 1 || strings.IndexByte(mod3736Alphabet, f[4][0]) < 0 {
		return LicenceIdentifierParts{}, idError("check character must be one of 0-9 A-Z")
	}
	p.Check = f[4][0]
	if want := mod3736Check(f[0] + f[1] + f[2] + f[3]); want != p.Check {
		return LicenceIdentifierParts{}, idError("check character is %c, the fields give %c (mistyped?)", p.Check, want)
	}
	return p, nil
}

// ValidLicenceTypeCode checks a type code: the defining body's credit code
// followed by a 3-digit sequence.
func ValidLicenceTypeCode(code string) error {
	if len(code) != 21 || !allIn(code[18:], "0123456789") {
		return idError("type code must be an 18-character credit code followed by 3 digits")
	}
	if _, err := users.NormalizeCreditCode(code[:18]); err != nil {
		return idError("type code: defining body's %v", err)
	}
	return nil
}

func (p LicenceIdentifierParts) checkFields() error {
	if err := ValidLicenceTypeCode(p.TypeCode); err != nil {
		return err
	}
	if _, err := users.NormalizeCreditCode(p.IssuerCreditCode); err != nil {
		return idError("issuer: %v", err)
	}
	if p.Serial == "" || len(p.Serial) > 32 || !allIn(p.Serial, mod3736Alphabet) {
		return idError("serial must be 1 to 32 characters from 0-9 A-Z")
	}
	if len(p.Version) != 3 || !allIn(p.Version, "0123456789") || p.Version == "000" {
		return idError("version must be 3 digits from 001")
	}
	return nil
}

// mod3736Check is the ISO 7064 MOD 37,36 hybrid check character: the one
// that brings the running product back to 1. s holds only 0-9 A-Z.
func mod3736Check(s string) byte {
	const m = 36
	p := m
	for i := 0; i < len(s); i++ {
		v := strings.IndexByte(mod3736Alphabet, s[i])
		t := (p + v) % m
		if t == 0 {
			t = m
		}
		p = (t * 2) % (m + 1)
	}
	return mod3736Alphabet[(m+1-p)%m]
}

func allIn(s, alphabet string) bool {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(alphabet, s[i]) < 0 {
			return false
		}
	}
	return true
}

func idError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrLicenceIdentifier, fmt.Sprintf(format, args...))
}
