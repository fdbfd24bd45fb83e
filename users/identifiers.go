package users

import (
	"errors"
	"strings"
	"time"
)

// Errors for national identifiers, so that a form can say exactly what is wrong.
var (
	ErrIDNumberFormat    = errors.New("resident ID number must be 17 digits followed by a digit or X")
	ErrIDNumberCheck     = errors.New("resident ID number check character is wrong (mistyped?)")
	ErrIDNumberBirthDate = errors.New("resident ID number holds an impossible birth date")
	ErrCreditCodeFormat  = errors.New("unified social credit code must be 18 characters from 0-9 and A-Z without I, O, S, V, Z")
	ErrCreditCodeCheck   = errors.New("unified social credit code check character is wrong (mistyped?)")
)

// idWeights are the GB 11643-1999 (ISO 7064 MOD 11-2) weights of the first 17 digits.
var idWeights = [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}

// idCheck maps the weighted sum modulo 11 to the check character.
const idCheck = "10X98765432"

// NormalizeIDNumber checks an 18-character resident ID number (GB 11643):
// format, birth date and check character. It returns the number with an
// upper-case X, so that one person always has one spelling.
func NormalizeIDNumber(s string) (string, error) {
	s = strings.ToUpper(strings.TrimSpace(s))
	if len(s) != 18 {
		return "", ErrIDNumberFormat
	}
	sum := 0
	for i := 0; i < 17; i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return "", ErrIDNumberFormat
		}
		sum += int(c-'0') * idWeights[i]
	}
	last := s[17]
	if (last < '0' || last > '9') && last != 'X' {
		return "", ErrIDNumberFormat
	}
	if _, err := time.Parse("20060102", s[6:14]); err != nil || s[6:10] < "1880" {
		return "", ErrIDNumberBirthDate
	}
	if idCheck[sum%11] != last {
		return "", ErrIDNumberCheck
	}
	return s, nil
}

// MaskIDNumber shows the region's first three characters and the last four,
// the way Chinese government sites do: 110***********123X.
func MaskIDNumber(s string) string {
	if len(s) < 8 {
		return strings.Repeat("*", len(s))
	}
	return s[:3] + strings.Repeat("*", len(s)-7) + s[len(s)-4:]
}

// creditAlphabet is the GB 32100-2015 character set; a character's value is its index.
const creditAlphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"

// creditWeights are the GB 32100 weights of the first 17 characters (3^i mod 31).
var creditWeights = [17]int{1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28}

// NormalizeCreditCode checks an 18-character unified social credit code
// (GB 32100): alphabet and the MOD 31 check character. Lower case is accepted
// and returned upper-cased.
func NormalizeCreditCode(s string) (string, error) {
	s = strings.ToUpper(strings.TrimSpace(s))
	if len(s) != 18 {
		return "", ErrCreditCodeFormat
	}
	sum := 0
	for i := 0; i < 17; i++ {
		v := strings.IndexByte(creditAlphabet, s[i])
		if v < 0 {
			return "", ErrCreditCodeFormat
		}
		sum += v * creditWeights[i]
	}
	if strings.IndexByte(creditAlphabet, s[17]) < 0 {
		return "", ErrCreditCodeFormat
	}
	want := creditAlphabet[(31-sum%31)%31]
	if s[17] != want {
		return "", ErrCreditCodeCheck
	}
	return s, nil
}
