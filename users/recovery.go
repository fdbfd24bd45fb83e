package users

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Recovery codes let a person sign in when the phone with the
// authenticator app is lost. Each is used once.
const (
	// RecoveryCodeCount is how many codes a set holds.
	RecoveryCodeCount = 10
	// recoveryCodeLen is each code's length: 10 characters of a 32-letter
	// alphabet, 50 bits.
	recoveryCodeLen = 10
	// recoveryAlphabet leaves out 0, 1, I and O, which people misread as
	// each other on paper.
	recoveryAlphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
)

// newRecoveryCodes returns a fresh set of codes, formatted for reading
// ("ABCDE-FGHJK"). Each byte of randomness picks one of 32 letters, so the
// low five bits are uniform.
func newRecoveryCodes() []string {
	codes := make([]string, RecoveryCodeCount)
	buf := make([]byte, recoveryCodeLen)
	for i := range codes {
		rand.Read(buf) // never fails since Go 1.24
		var b strings.Builder
		for j, x := range buf {
			if j == recoveryCodeLen/2 {
				b.WriteByte('-')
			}
			b.WriteByte(recoveryAlphabet[x&31])
		}
		codes[i] = b.String()
	}
	return codes
}

// normalizeRecoveryCode upper-cases a typed code and drops the dash and
// spaces; ok is false when it cannot be a recovery code.
func normalizeRecoveryCode(s string) (string, bool) {
	s = strings.ToUpper(strings.NewReplacer("-", "", " ", "", "\t", "").Replace(s))
	if len(s) != recoveryCodeLen {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(recoveryAlphabet, s[i]) < 0 {
			return "", false
		}
	}
	return s, true
}

// hashRecoveryCode is what is stored of a normalized code: HMAC-SHA-256
// under a key derived from the key-encryption key, bound to the account.
//
// A fast hash is enough here, unlike for passwords: a code is 50 random
// bits, not something a person chose, so there is no dictionary to try;
// online guessing is throttled by the lockout, and offline guessing from a
// copy of the table needs the key-encryption key as well. Binding the
// account means equal codes of two accounts do not show as equal hashes.
func hashRecoveryCode(key []byte, userID, normalized string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(userID))
	m.Write([]byte{0})
	m.Write([]byte(normalized))
	return hex.EncodeToString(m.Sum(nil))
}
