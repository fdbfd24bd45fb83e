package certs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/smx509"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
)

const distid = "distid:" + DefaultSignerID

func TestInitChainVerifiesWithOpenSSL(t *testing.T) {
	needOpenSSL(t)
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		s, _ := newTestService(t, d)
		ca := initCA(t, s)
		leaf := issueUser(t, s, nil)
		dir := t.TempDir()
		writeFile(t, dir, "root.pem", PEM(ca.Root.DER))
		writeFile(t, dir, "ca.pem", PEM(ca.Issuer.DER))
		writeFile(t, dir, "leaf.pem", PEM(leaf.DER))

		// OpenSSL 3.0's verify applies -vfyopt distid to the target
		// certificate only and checks the issuing CA's signature with an
		// empty ID, so "-CAfile root.pem -untrusted ca.pem leaf.pem" fails
		// at depth 1 even for a chain OpenSSL itself signed with that distid.
		// The chain is checked link by link instead.
		for _, args := range [][]string{
			{"verify", "-CAfile", "root.pem", "-vfyopt", distid, "ca.pem"},
			{"verify", "-partial_chain", "-CAfile", "ca.pem", "-vfyopt", distid, "leaf.pem"},
		} {
			out, err := openssl(t, dir, args...)
			if target := args[len(args)-1]; err != nil || !strings.Contains(out, target+": OK") {
				t.Fatalf("openssl %v: %v\n%s", args, err, out)
			}
		}
		for file, want := range map[string][]string{
			"root.pem": {"SM2-with-SM3", "CA:TRUE, pathlen:1", "Certificate Sign, CRL Sign"},
			"ca.pem":   {"SM2-with-SM3", "CA:TRUE, pathlen:0", "Certificate Sign, CRL Sign"},
			"leaf.pem": {"SM2-with-SM3", "Digital Signature, Non Repudiation", "https://sso.example.test/certs/crl", "CA:FALSE"},
		} {
			out, err := openssl(t, dir, "x509", "-in", file, "-noout", "-text")
			if err != nil {
				t.Fatalf("openssl x509 %s: %v\n%s", file, err, out)
			}
			for _, w := range want {
				if !strings.Contains(out, w) {
					t.Errorf("%s: openssl x509 -text lacks %q:\n%s", file, w, out)
				}
			}
		}
	})
}

func TestInitRefusesASecondCA(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		s, _ := newTestService(t, d)
		first := initCA(t, s)
		again, err := s.Init(context.Background(), "Other")
		if !errors.Is(err, ErrCAExists) {
			t.Fatalf("second Init: err = %v, want ErrCAExists", err)
		}
		if again == nil || again.Root.ID != first.Root.ID {
			t.Fatalf("second Init should return the existing CA")
		}
	})
}

func TestSignatureVerifiesWithOpenSSL(t *testing.T) {
	needOpenSSL(t)
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		s, _ := newTestService(t, d)
		initCA(t, s)
		leaf := issueUser(t, s, nil)
		msg := []byte("document to sign " + randomHex(t))
		sig, err := s.Sign(context.Background(), leaf.ID, msg)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		writeFile(t, dir, "msg", msg)
		writeFile(t, dir, "tampered", append(msg, '!'))
		writeFile(t, dir, "sig.der", sig)
		writeFile(t, dir, "pub.pem", publicKeyPEM(t, parsed(t, leaf).PublicKey))
		verify := func(in string) (string, error) {
			return openssl(t, dir, "pkeyutl", "-verify", "-in", in, "-pubin", "-inkey", "pub.pem", "-rawin",
				"-digest", "sm3", "-pkeyopt", distid, "-sigfile", "sig.der")
		}
		if out, err := verify("msg"); err != nil || !strings.Contains(out, "Signature Verified Successfully") {
			t.Fatalf("openssl pkeyutl -verify: %v\n%s", err, out)
		}
		if out, err := verify("tampered"); err == nil {
			t.Fatalf("openssl accepted the signature over tampered data:\n%s", out)
		}
	})
}

// SignDigest over Digest(cert, msg) must be the same kind of signature as
// Sign over msg, so OpenSSL verifies it over the document.
func TestSignDigestVerifiesWithOpenSSL(t *testing.T) {
	needOpenSSL(t)
	d := dbtest.Open(t, db.SQLite)
	s, _ := newTestService(t, d)
	initCA(t, s)
	leaf := issueUser(t, s, nil)
	msg := []byte("digest-signed document")
	e, err := Digest(parsed(t, leaf), msg)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := s.SignDigest(context.Background(), leaf.ID, e)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFile(t, dir, "msg", msg)
	writeFile(t, dir, "sig.der", sig)
	writeFile(t, dir, "pub.pem", publicKeyPEM(t, parsed(t, leaf).PublicKey))
	out, err := openssl(t, dir, "pkeyutl", "-verify", "-in", "msg", "-pubin", "-inkey", "pub.pem", "-rawin",
		"-digest", "sm3", "-pkeyopt", distid, "-sigfile", "sig.der")
	if err != nil {
		t.Fatalf("openssl pkeyutl -verify: %v\n%s", err, out)
	}
}

func TestOpenSSLSignatureVerifiesHere(t *testing.T) {
	needOpenSSL(t)
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		s, _ := newTestService(t, d)
		initCA(t, s)
		dir := t.TempDir()
		msg := []byte("signed by openssl " + randomHex(t))
		writeFile(t, dir, "msg", msg)
		for _, args := range [][]string{
			{"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:SM2", "-out", "k.pem"},
			{"pkey", "-in", "k.pem", "-pubout", "-out", "pub.pem"},
			{"pkeyutl", "-sign", "-in", "msg", "-inkey", "k.pem", "-rawin", "-digest", "sm3", "-pkeyopt", distid, "-out", "sig.der"},
		} {
			if out, err := openssl(t, dir, args...); err != nil {
				t.Fatalf("openssl %s: %v\n%s", args[0], err, out)
			}
		}
		pubPEM, _ := os.ReadFile(filepath.Join(dir, "pub.pem"))
		sig, _ := os.ReadFile(filepath.Join(dir, "sig.der"))
		pub, err := smx509.ParsePKIXPublicKey(pemBytes(t, pubPEM))
		if err != nil {
			t.Fatal(err)
		}
		key, ok := isSM2Key(pub)
		if !ok {
			t.Fatalf("openssl key parsed as %T, not SM2", pub)
		}
		if !sm2.VerifyASN1WithSM2(key, nil, msg, sig) {
			t.Fatal("raw openssl signature does not verify against its public key")
		}
		leaf := issueUser(t, s, key)
		res, err := s.Verify(context.Background(), RawSignature{Data: msg, Signature: sig, Certificate: parsed(t, leaf)})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Valid {
			t.Fatalf("openssl signature with our certificate: %+v", res.Reasons)
		}
	})
}

// The CA's key imported from PEM must be usable: a leaf it issues chains
// to the imported root.
func TestImport(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		src, _ := newTestService(t, dbtest.Open(t, db.SQLite))
		srcCA := initCA(t, src)
		caKey, err := src.privateKey(context.Background(), srcCA.Issuer.ID)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := smx509.MarshalPKCS8PrivateKey(caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyPEM := pemEncode("PRIVATE KEY", keyDER)
		otherKey, _ := smx509.MarshalPKCS8PrivateKey(newKey(t))

		cases := []struct {
			name          string
			root, ca, key []byte
			wantErr       bool
		}{
			{"ca as root", PEM(srcCA.Issuer.DER), PEM(srcCA.Issuer.DER), keyPEM, true},
			{"key of another", PEM(srcCA.Root.DER), PEM(srcCA.Issuer.DER), pemEncode("PRIVATE KEY", otherKey), true},
			{"not PEM", []byte("garbage"), PEM(srcCA.Issuer.DER), keyPEM, true},
			{"good", PEM(srcCA.Root.DER), PEM(srcCA.Issuer.DER), keyPEM, false},
		}
		s, _ := newTestService(t, d)
		for _, tc := range cases {
			_, err := s.Import(context.Background(), tc.root, tc.ca, tc.key)
			if (err != nil) != tc.wantErr {
				t.Fatalf("%s: err = %v, wantErr %v", tc.name, err, tc.wantErr)
			}
		}
		leaf := issueUser(t, s, nil)
		roots, inter := smx509.NewCertPool(), smx509.NewCertPool()
		roots.AddCert(parsed(t, srcCA.Root))
		inter.AddCert(parsed(t, srcCA.Issuer))
		if _, err := parsed(t, leaf).Verify(smx509.VerifyOptions{Roots: roots, Intermediates: inter}); err != nil {
			t.Fatalf("leaf issued by the imported CA: %v", err)
		}
		if _, err := s.Import(context.Background(), PEM(srcCA.Root.DER), PEM(srcCA.Issuer.DER), keyPEM); !errors.Is(err, ErrCAExists) {
			t.Fatalf("second import: err = %v, want ErrCAExists", err)
		}
	})
}

// The schema, not only the check in Init, keeps a second CA out, so two
// concurrent inits cannot both succeed.
func TestSchemaAllowsOneCA(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		s, _ := newTestService(t, d)
		initCA(t, s)
		other, _ := newTestService(t, dbtest.Open(t, db.SQLite))
		ca := initCA(t, other) // different serials: only the one-CA index can refuse it
		k := newKey(t)
		_, err := s.storeCA(context.Background(), ca.Root.DER, ca.Issuer.DER, k, k, "certs.ca_init")
		if !errors.Is(err, ErrCAExists) {
			t.Fatalf("second CA stored: err = %v, want ErrCAExists", err)
		}
	})
}
