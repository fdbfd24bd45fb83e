package users

import (
	"errors"
	"testing"
)

// The valid vectors are the published examples of GB 11643 and of public
// credit-code documentation, not real people.
func TestNormalizeIDNumber(t *testing.T) {
	tests := []struct {
		in, want string
		err      error
	}{
		{"11010519491231002X", "11010519491231002X", nil},
		{" 11010519491231002x ", "11010519491231002X", nil},
		{"110105194912310021", "", ErrIDNumberCheck},
		{"11010519491231002", "", ErrIDNumberFormat},
		{"1101051949123100200", "", ErrIDNumberFormat},
		{"11010519491231A02X", "", ErrIDNumberFormat},
		{"11010519491231002Y", "", ErrIDNumberFormat},
		{"110105194913310025", "", ErrIDNumberBirthDate},
		{"", "", ErrIDNumberFormat},
		{"１１０１０５１９４９１２３１００２Ｘ", "", ErrIDNumberFormat},
	}
	for _, tc := range tests {
		got, err := NormalizeIDNumber(tc.in)
		if !errors.Is(err, tc.err) || got != tc.want {
			t.Errorf("NormalizeIDNumber(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestNormalizeCreditCode(t *testing.T) {
	tests := []struct {
		in, want string
		err      error
	}{
		{"91350100M000100Y43", "91350100M000100Y43", nil},
		{"91110000600037341L", "91110000600037341L", nil},
		{"11100000000013338W", "11100000000013338W", nil},
		{"91350100m000100y43", "91350100M000100Y43", nil},
		{"91350100M000100Y44", "", ErrCreditCodeCheck},
		{"91350100M000100Y4", "", ErrCreditCodeFormat},
		{"91350100O000100Y43", "", ErrCreditCodeFormat}, // O is not in the alphabet
		{"9135010IM000100Y43", "", ErrCreditCodeFormat}, // nor is I
		{"", "", ErrCreditCodeFormat},
	}
	for _, tc := range tests {
		got, err := NormalizeCreditCode(tc.in)
		if !errors.Is(err, tc.err) || got != tc.want {
			t.Errorf("NormalizeCreditCode(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestMaskIDNumber(t *testing.T) {
	if got := MaskIDNumber("11010519491231002X"); got != "110***********002X" {
		t.Fatalf("got %q", got)
	}
	if got := MaskIDNumber("123"); got != "***" {
		t.Fatalf("short input: %q", got)
	}
}
