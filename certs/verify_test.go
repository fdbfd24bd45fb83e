package certs

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"slices"
	"testing"
	"time"

	"github.com/emmansun/gmsm/pkcs7"
	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/sm3"
	"github.com/emmansun/gmsm/smx509"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
)

func codes(r *Result) []string {
	var out []string
	for _, x := range r.Reasons {
		out = append(out, x.Code)
	}
	return out
}

func signWith(t *testing.T, k *sm2.PrivateKey, msg []byte) []byte {
	t.Helper()
	sig, err := sm2.SignASN1(rand.Reader, k, msg, sm2.DefaultSM2SignerOpts)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// selfSigned makes an SM2 certificate that does not chain to our root.
func selfSigned(t *testing.T, k *sm2.PrivateKey) *smx509.Certificate {
	t.Helper()
	tpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "stranger"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment}
	der, err := smx509.CreateCertificate(rand.Reader, tpl, tpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := smx509.ParseCertificate(der)
	return c
}

func TestVerifyRawSignature(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, clock := newTestService(t, d)
		start := clock.t
		clock.t = start.Add(-10 * time.Hour) // the CA predates the expired certificate below
		initCA(t, s)
		clock.t = start
		key, otherKey := newKey(t), newKey(t)
		cert := parsed(t, issueUser(t, s, &key.PublicKey))
		other := parsed(t, issueUser(t, s, &otherKey.PublicKey))
		old, err := s.Issue(ctx, IssueRequest{Subject: pkix.Name{CommonName: "Old"}, PublicKey: &key.PublicKey,
			Kind: KindUser, NotBefore: clock.t.Add(-3 * time.Hour), Validity: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		revoked := issueUser(t, s, &key.PublicKey)
		revokedAt := clock.t
		if err := s.Revoke(ctx, revoked.Serial, ReasonKeyCompromise); err != nil {
			t.Fatal(err)
		}
		msg := []byte("a document")
		sig := signWith(t, key, msg)
		e, _ := Digest(cert, msg)

		cases := []struct {
			name      string
			in        RawSignature
			wantValid bool
			wantCodes []string
		}{
			{"valid", RawSignature{Data: msg, Signature: sig, Certificate: cert}, true, nil},
			{"valid over digest", RawSignature{Digest: e, Signature: sig, Certificate: cert}, true, nil},
			{"tampered data", RawSignature{Data: []byte("a document!"), Signature: sig, Certificate: cert}, false, []string{CodeSignatureInvalid}},
			{"wrong key", RawSignature{Data: msg, Signature: sig, Certificate: other}, false, []string{CodeSignatureInvalid}},
			{"expired certificate", RawSignature{Data: msg, Signature: sig, Certificate: parsed(t, old)}, false, []string{CodeExpired}},
			{"expired cert, signed while valid", RawSignature{Data: msg, Signature: sig, Certificate: parsed(t, old), SignedAt: clock.t.Add(-150 * time.Minute)},
				true, []string{CodeSigningTimeClaimed}},
			{"untrusted chain", RawSignature{Data: msg, Signature: sig, Certificate: selfSigned(t, key)}, false, []string{CodeUntrustedChain}},
			{"signed after revocation", RawSignature{Data: msg, Signature: sig, Certificate: parsed(t, revoked)}, false, []string{CodeRevokedBeforeSigning}},
			{"signed before revocation", RawSignature{Data: msg, Signature: sig, Certificate: parsed(t, revoked), SignedAt: revokedAt.Add(-time.Minute)},
				true, []string{CodeSigningTimeClaimed, CodeRevokedAfterSigning}},
		}
		clock.t = clock.t.Add(time.Second)
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				res, err := s.Verify(ctx, tc.in)
				if err != nil {
					t.Fatal(err)
				}
				if res.Valid != tc.wantValid {
					t.Errorf("valid = %v, want %v (%+v)", res.Valid, tc.wantValid, res.Reasons)
				}
				for _, c := range tc.wantCodes {
					if !slices.Contains(codes(res), c) {
						t.Errorf("reasons %v lack %s", codes(res), c)
					}
				}
				if tc.wantValid && len(tc.wantCodes) == 0 && len(res.Reasons) != 0 {
					t.Errorf("unexpected reasons %+v", res.Reasons)
				}
			})
		}
	})
}

func TestCMSRoundTrip(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, clock := newTestService(t, d)
		initCA(t, s)
		leaf := issueUser(t, s, nil)
		msg := []byte("licence application " + randomHex(t))
		der, err := s.SignCMS(ctx, leaf.ID, msg)
		if err != nil {
			t.Fatal(err)
		}
		verify := func(content []byte, digest bool) *Result {
			t.Helper()
			p7, err := pkcs7.Parse(der)
			if err != nil {
				t.Fatal(err)
			}
			if !p7.GetOnlySigner().Equal(parsed(t, leaf)) || len(p7.Certificates) != 3 {
				t.Fatalf("CMS should carry the signer and the chain, has %d certificates", len(p7.Certificates))
			}
			res, err := s.VerifyCMS(ctx, p7, content, digest)
			if err != nil {
				t.Fatal(err)
			}
			return res
		}
		sum := sm3.Sum(msg)
		if res := verify(msg, false); !res.Valid || len(res.Reasons) != 0 {
			t.Fatalf("CMS over the document: %+v", res)
		}
		if res := verify(sum[:], true); !res.Valid {
			t.Fatalf("CMS over the SM3 digest: %+v", res.Reasons)
		}
		if res := verify([]byte("other"), false); res.Valid || !slices.Contains(codes(res), CodeMessageDigestInvalid) {
			t.Fatalf("tampered document: %+v", res)
		}

		// Revoked after signing: valid then, reported as revoked now.
		clock.t = clock.t.Add(time.Minute)
		if err := s.Revoke(ctx, leaf.Serial, ReasonSuperseded); err != nil {
			t.Fatal(err)
		}
		res := verify(msg, false)
		if !res.Valid || !slices.Contains(codes(res), CodeRevokedAfterSigning) || res.Signer.Status != StatusRevoked {
			t.Fatalf("signed before revocation: %+v", res)
		}
		if _, err := s.SignCMS(ctx, leaf.ID, msg); !errors.Is(err, ErrNotUsable) {
			t.Fatalf("signing with a revoked certificate: err = %v, want ErrNotUsable", err)
		}
	})
}

// A CMS whose signing time falls after the revocation is refused.
func TestCMSSignedAfterRevocation(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, clock := newTestService(t, d)
		initCA(t, s)
		leaf := issueUser(t, s, nil)
		der, err := s.SignCMS(ctx, leaf.ID, []byte("late"))
		if err != nil {
			t.Fatal(err)
		}
		clock.t = clock.t.Add(-time.Hour) // the revocation is recorded before the signing time
		if err := s.Revoke(ctx, leaf.Serial, ReasonKeyCompromise); err != nil {
			t.Fatal(err)
		}
		p7, _ := pkcs7.Parse(der)
		res, err := s.VerifyCMS(ctx, p7, []byte("late"), false)
		if err != nil {
			t.Fatal(err)
		}
		if res.Valid || !slices.Contains(codes(res), CodeRevokedBeforeSigning) {
			t.Fatalf("signed after revocation: %+v", res)
		}
	})
}

func TestRevokeRepublishesCRL(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, _ := newTestService(t, d)
		ca := initCA(t, s)
		leaf := issueUser(t, s, nil)
		kept := issueUser(t, s, nil)
		crlBefore := crlOf(t, s, ca)
		if len(crlBefore.RevokedCertificateEntries) != 0 {
			t.Fatalf("fresh CRL lists %d certificates", len(crlBefore.RevokedCertificateEntries))
		}
		if err := s.Revoke(ctx, leaf.Serial, ReasonKeyCompromise); err != nil {
			t.Fatal(err)
		}
		crl := crlOf(t, s, ca)
		if crl.Number.Cmp(crlBefore.Number) <= 0 {
			t.Errorf("CRL number %v did not grow from %v", crl.Number, crlBefore.Number)
		}
		if len(crl.RevokedCertificateEntries) != 1 || serialHex(crl.RevokedCertificateEntries[0].SerialNumber) != leaf.Serial {
			t.Fatalf("CRL entries %+v, want only %s", crl.RevokedCertificateEntries, leaf.Serial)
		}
		if crl.RevokedCertificateEntries[0].ReasonCode != ReasonKeyCompromise {
			t.Errorf("reason %d", crl.RevokedCertificateEntries[0].ReasonCode)
		}
		for name, serial := range map[string]string{"again": leaf.Serial, "root": ca.Root.Serial, "unknown": "01"} {
			if err := s.Revoke(ctx, serial, 0); !errors.Is(err, ErrNotRevocable) {
				t.Errorf("revoke %s: err = %v, want ErrNotRevocable", name, err)
			}
		}
		if got, _ := s.Get(ctx, kept.ID); got.Status != StatusActive {
			t.Errorf("an unrelated certificate was revoked")
		}
	})
}

func crlOf(t *testing.T, s *Service, ca *CA) *smx509.RevocationList {
	t.Helper()
	der, err := s.CRL(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	crl, err := smx509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(parsed(t, ca.Issuer)); err != nil {
		t.Fatalf("CRL not signed by the issuing CA: %v", err)
	}
	return crl
}

func TestSealedKeysAreBoundToTheirCertificate(t *testing.T) {
	d := dbtest.Open(t, db.SQLite)
	s, _ := newTestService(t, d)
	sealed, err := s.sealKey("a", newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.sealer.open("a", sealed); err != nil {
		t.Fatalf("open: %v", err)
	}
	if _, err := s.sealer.open("b", sealed); !errors.Is(err, errUnseal) {
		t.Fatalf("opened under another id: %v", err)
	}
	other, _ := newTestService(t, d)
	if _, err := other.sealer.open("a", sealed); !errors.Is(err, errUnseal) {
		t.Fatalf("opened under another KEK: %v", err)
	}
}

func TestIssueRefusesBadRequests(t *testing.T) {
	d := dbtest.Open(t, db.SQLite)
	s, _ := newTestService(t, d)
	ctx := context.Background()
	if _, err := s.Issue(ctx, IssueRequest{Subject: pkix.Name{CommonName: "x"}, Kind: KindUser}); !errors.Is(err, ErrNoCA) {
		t.Fatalf("issue without CA: %v", err)
	}
	initCA(t, s)
	for name, req := range map[string]IssueRequest{
		"root kind":  {Subject: pkix.Name{CommonName: "x"}, Kind: KindRoot},
		"no name":    {Kind: KindUser},
		"not an SM2": {Subject: pkix.Name{CommonName: "x"}, Kind: KindUser, PublicKey: &ecdsaP256(t).PublicKey},
	} {
		if _, err := s.Issue(ctx, req); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	ca, _ := s.CA(ctx)
	if _, err := s.Sign(ctx, ca.Issuer.ID, []byte("x")); !errors.Is(err, ErrNotUsable) {
		t.Errorf("signing with the CA: err = %v, want ErrNotUsable", err)
	}
}

func TestCAActionsAreAudited(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, _ := newTestService(t, d)
		initCA(t, s)
		leaf := issueUser(t, s, nil)
		if _, err := s.Sign(ctx, leaf.ID, []byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SignCMS(ctx, leaf.ID, []byte("x")); err != nil {
			t.Fatal(err)
		}
		if err := s.Revoke(ctx, leaf.Serial, ReasonSuperseded); err != nil {
			t.Fatal(err)
		}
		log := audit.NewLog(d)
		for action, want := range map[string]int{"certs.ca_init": 1, "certs.issue": 1, "certs.sign": 2, "certs.revoke": 1} {
			evs, err := log.List(ctx, audit.Filter{Action: action})
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != want {
				t.Errorf("%s: %d events, want %d", action, len(evs), want)
			}
			for _, ev := range evs {
				if action != "certs.ca_init" && ev.Subject != leaf.OwnerUserID {
					t.Errorf("%s: subject %q, want the owner %q", action, ev.Subject, leaf.OwnerUserID)
				}
			}
		}
	})
}
