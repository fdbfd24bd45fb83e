package certs

import (
	"context"
	"crypto/rand"
	"testing"

	"github.com/emmansun/gmsm/pkcs7"
	"github.com/emmansun/gmsm/sm2"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
)

// The message size matches "openssl speed sm2", which signs 20 bytes.
var benchMsg = make([]byte, 20)

func reportOps(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

func BenchmarkSM2Sign(b *testing.B) {
	key := newKey(b)
	for b.Loop() {
		if _, err := sm2.SignASN1(rand.Reader, key, benchMsg, sm2.DefaultSM2SignerOpts); err != nil {
			b.Fatal(err)
		}
	}
	reportOps(b)
}

func BenchmarkSM2Verify(b *testing.B) {
	key := newKey(b)
	sig, err := sm2.SignASN1(rand.Reader, key, benchMsg, sm2.DefaultSM2SignerOpts)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if !sm2.VerifyASN1WithSM2(&key.PublicKey, nil, benchMsg, sig) {
			b.Fatal("signature does not verify")
		}
	}
	reportOps(b)
}

// BenchmarkCMSSign includes loading and unsealing the key from SQLite.
func BenchmarkCMSSign(b *testing.B) {
	s, _ := newTestService(b, dbtest.Open(b, db.SQLite))
	initCA(b, s)
	leaf := issueUser(b, s, nil)
	for b.Loop() {
		if _, err := s.SignCMS(context.Background(), leaf.ID, benchMsg); err != nil {
			b.Fatal(err)
		}
	}
	reportOps(b)
}

// BenchmarkCMSVerify includes the chain and revocation checks against SQLite.
func BenchmarkCMSVerify(b *testing.B) {
	ctx := context.Background()
	s, _ := newTestService(b, dbtest.Open(b, db.SQLite))
	initCA(b, s)
	leaf := issueUser(b, s, nil)
	der, err := s.SignCMS(ctx, leaf.ID, benchMsg)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		p7, err := pkcs7.Parse(der)
		if err != nil {
			b.Fatal(err)
		}
		res, err := s.VerifyCMS(ctx, p7, benchMsg, false)
		if err != nil || !res.Valid {
			b.Fatalf("verify: %v %+v", err, res)
		}
	}
	reportOps(b)
}
