package users

import (
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"testing"
	"time"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/kek"
)

// testClock is a settable clock for sessions and lockout.
type testClock struct{ t time.Time }

func newTestClock() *testClock {
	return &testClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *testClock) now() time.Time          { return c.t }
func (c *testClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// newTestStore is an account store under a fresh random key.
func newTestStore(t testing.TB, d *db.DB) *SQLStore {
	t.Helper()
	b := make([]byte, kek.KeySize)
	rand.Read(b)
	k, err := kek.New(b)
	if err != nil {
		t.Fatal(err)
	}
	return NewSQLStore(d, k)
}

// randomIDNumber makes a valid resident ID number of nobody in particular.
func randomIDNumber() string {
	s := fmt.Sprintf("%06d%04d%02d%02d%03d", mrand.IntN(1000000), 1950+mrand.IntN(60), 1+mrand.IntN(12), 1+mrand.IntN(28), mrand.IntN(1000))
	sum := 0
	for i := 0; i < 17; i++ {
		sum += int(s[i]-'0') * idWeights[i]
	}
	return s + string(idCheck[sum%11])
}

// randomIDNumberEndingInX makes one whose check character is X, to test case.
func randomIDNumberEndingInX() string {
	for {
		if n := randomIDNumber(); n[17] == 'X' {
			return n
		}
	}
}

// randomPhone makes a mainland mobile number of nobody in particular.
func randomPhone() string {
	return fmt.Sprintf("13%09d", mrand.IntN(1000000000))
}

// randomPassword makes a password no policy or test data would contain.
func randomPassword() string {
	b := make([]byte, 12)
	rand.Read(b)
	return fmt.Sprintf("pw-%x", b)
}
