package users

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// The published test key of RFC 4226 and RFC 6238 (ASCII "1234567890"
// twice), not a secret of anybody.
var rfcTestKey = []byte("12345678901234567890")

func TestHOTPMatchesRFC4226(t *testing.T) {
	// RFC 4226, Appendix D.
	want := []string{"755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"}
	for counter, code := range want {
		if got := HOTP(rfcTestKey, uint64(counter), 6); got != code {
			t.Errorf("HOTP(counter %d) = %s, want %s", counter, got, code)
		}
	}
}

func TestTOTPMatchesRFC6238(t *testing.T) {
	// RFC 6238, Appendix B, the SHA-1 rows (eight digits).
	tests := []struct {
		unix int64
		code string
	}{
		{59, "94287082"},
		{1111111109, "07081804"},
		{1111111111, "14050471"},
		{1234567890, "89005924"},
		{2000000000, "69279037"},
		{20000000000, "65353130"},
	}
	for _, tt := range tests {
		if got := TOTPCode(rfcTestKey, time.Unix(tt.unix, 0), 8); got != tt.code {
			t.Errorf("TOTP at %d = %s, want %s", tt.unix, got, tt.code)
		}
	}
}

func TestMatchTOTPAcceptsOneStepEitherSide(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	secret := randomTOTPSecret(t)
	tests := []struct {
		steps int
		ok    bool
	}{
		{-2, false}, {-1, true}, {0, true}, {1, true}, {2, false},
	}
	for _, tt := range tests {
		at := now.Add(time.Duration(tt.steps) * TOTPPeriod)
		step, ok := matchTOTP(secret, TOTPCode(secret, at, TOTPDigits), now)
		if ok != tt.ok {
			t.Errorf("code of step %+d: accepted %v, want %v", tt.steps, ok, tt.ok)
		}
		if ok && step != totpStep(at) {
			t.Errorf("code of step %+d matched step %d, want %d", tt.steps, step, totpStep(at))
		}
	}
	if _, ok := matchTOTP(secret, "12345", now); ok {
		t.Error("a five-digit code matched")
	}
}

func TestOTPAuthURI(t *testing.T) {
	secret := randomTOTPSecret(t)
	u, err := url.Parse(otpauthURI(TOTPIssuer, "alice", secret))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Scheme != "otpauth" || u.Host != "totp" || u.Path != "/sso:alice" || q.Get("issuer") != "sso" {
		t.Fatalf("URI %s", u)
	}
	got, err := DecodeTOTPSecret(q.Get("secret"))
	if err != nil || string(got) != string(secret) {
		t.Fatalf("secret in URI decodes to %x (%v), want %x", got, err, secret)
	}
	if q.Get("digits") != "6" || q.Get("period") != "30" || q.Get("algorithm") != "SHA1" {
		t.Errorf("parameters %v", q)
	}
}

func TestClassifyCode(t *testing.T) {
	tests := []struct {
		in       string
		kind     SecondFactor
		wantCode string
	}{
		{"123456", FactorTOTP, "123456"},
		{" 123 456 ", FactorTOTP, "123456"},
		{"12345", "", ""},
		{"1234567", "", ""},
		{"abcde-fghjk", FactorRecoveryCode, "ABCDEFGHJK"},
		{"ABCDEFGHJK", FactorRecoveryCode, "ABCDEFGHJK"},
		{"ABCDE-FGHJ0", "", ""}, // 0 is not in the alphabet
		{"ABCDE-FGHJI", "", ""}, // nor is I
		{strings.Repeat("1", 100), "", ""},
		{"", "", ""},
	}
	for _, tt := range tests {
		kind, code := classifyCode(tt.in)
		if kind != tt.kind || code != tt.wantCode {
			t.Errorf("classifyCode(%q) = %q %q, want %q %q", tt.in, kind, code, tt.kind, tt.wantCode)
		}
	}
}

func TestRecoveryCodesShape(t *testing.T) {
	codes := newRecoveryCodes()
	if len(codes) != RecoveryCodeCount {
		t.Fatalf("%d codes, want %d", len(codes), RecoveryCodeCount)
	}
	seen := map[string]bool{}
	for _, c := range codes {
		n, ok := normalizeRecoveryCode(c)
		if !ok || len(c) != 11 || c[5] != '-' || len(n) != recoveryCodeLen {
			t.Errorf("code %q is not of the form XXXXX-XXXXX", c)
		}
		if strings.ContainsAny(n, "01IO") {
			t.Errorf("code %q has an ambiguous character", c)
		}
		seen[n] = true
	}
	if len(seen) != len(codes) {
		t.Errorf("codes repeat: %v", codes)
	}
}

func TestRecoveryCodeHashIsKeyedAndBound(t *testing.T) {
	k1, k2 := randomTOTPSecret(t), randomTOTPSecret(t)
	code, _ := normalizeRecoveryCode(newRecoveryCodes()[0])
	h := hashRecoveryCode(k1, "user-1", code)
	if strings.Contains(h, code) || len(h) != 64 {
		t.Fatalf("hash %q", h)
	}
	others := []string{hashRecoveryCode(k2, "user-1", code), hashRecoveryCode(k1, "user-2", code)}
	if slices.Contains(others, h) {
		t.Error("the hash does not depend on the key and the account")
	}
}
