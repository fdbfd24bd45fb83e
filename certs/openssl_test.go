package certs

import (
	"bytes"
	"context"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/smx509"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

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

// The detached CMS the server hands out is checked with OpenSSL 3 as far
// as OpenSSL 3.0 can go with GB/T 35275: its cms -verify refuses the
// SignedData content type 1.2.156.10197.6.1.4.2.2 outright (the test pins
// that, so a later OpenSSL that accepts it makes the test say so), while
// the pieces that decide validity verify with OpenSSL on their own: the
// signer's SM2 signature over the DER SET of signed attributes (pkeyutl,
// distid 1234567812345678), the messageDigest attribute against
// `openssl dgst -sm3` of the document, and the signer's chain.
func TestCMSSignerVerifiesWithOpenSSL(t *testing.T) {
	needOpenSSL(t)
	d := dbtest.Open(t, db.SQLite)
	s, _ := newTestService(t, d)
	ca := initCA(t, s)
	leaf := issueUser(t, s, nil)
	doc := []byte("document signed as CMS " + randomHex(t))
	cms, err := s.SignCMS(context.Background(), leaf.ID, doc)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFile(t, dir, "doc", doc)
	writeFile(t, dir, "sig.der", cms)
	writeFile(t, dir, "chain.pem", append(PEM(ca.Root.DER), PEM(ca.Issuer.DER)...))
	writeFile(t, dir, "ca.pem", PEM(ca.Issuer.DER))
	writeFile(t, dir, "leaf.pem", PEM(leaf.DER))

	out, err := openssl(t, dir, "cms", "-verify", "-binary", "-inform", "DER", "-in", "sig.der",
		"-content", "doc", "-CAfile", "chain.pem", "-out", os.DevNull)
	if err == nil {
		t.Fatalf("openssl cms -verify now accepts GB/T 35275 SignedData; make it the check and update the README:\n%s", out)
	}
	if !strings.Contains(out, "content type not signed data") {
		t.Fatalf("openssl cms -verify failed for another reason than the GB/T 35275 content type:\n%s", out)
	}

	parts := cmsSignerParts(t, cms)
	if !bytes.Equal(parts.signatureAlgorithm, oidSM2Sign) && !bytes.Equal(parts.signatureAlgorithm, oidSM2WithSM3) {
		t.Fatalf("signature algorithm OID %x is neither SM2 nor SM3withSM2", parts.signatureAlgorithm)
	}
	writeFile(t, dir, "attrs.der", parts.signedAttrs)
	writeFile(t, dir, "tampered-attrs.der", tamper(parts.signedAttrs))
	writeFile(t, dir, "signer.sig", parts.signature)
	if out, err := openssl(t, dir, "x509", "-in", "leaf.pem", "-noout", "-pubkey", "-out", "pub.pem"); err != nil {
		t.Fatalf("openssl x509 -pubkey: %v\n%s", err, out)
	}
	verify := func(in string) (string, error) {
		return openssl(t, dir, "pkeyutl", "-verify", "-in", in, "-pubin", "-inkey", "pub.pem", "-rawin",
			"-digest", "sm3", "-pkeyopt", distid, "-sigfile", "signer.sig")
	}
	if out, err := verify("attrs.der"); err != nil || !strings.Contains(out, "Signature Verified Successfully") {
		t.Fatalf("openssl pkeyutl over the signed attributes: %v\n%s", err, out)
	}
	if out, err := verify("tampered-attrs.der"); err == nil {
		t.Fatalf("openssl accepted the signer signature over altered signed attributes:\n%s", out)
	}

	out, err = openssl(t, dir, "dgst", "-sm3", "-hex", "doc")
	if err != nil {
		t.Fatalf("openssl dgst -sm3: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(out[strings.LastIndex(out, " ")+1:]); got != hex.EncodeToString(parts.messageDigest) {
		t.Fatalf("messageDigest attribute %x, openssl dgst -sm3 of the document %s", parts.messageDigest, got)
	}
	if !bytes.Equal(parts.contentType, oidSMData) {
		t.Fatalf("contentType attribute %x, want GB/T 35275 data", parts.contentType)
	}
	if !bytes.Equal(parts.signerCert, leaf.DER) {
		t.Fatal("the CMS does not carry the signer's certificate")
	}
	if out, err := openssl(t, dir, "verify", "-partial_chain", "-CAfile", "ca.pem", "-vfyopt", distid, "leaf.pem"); err != nil || !strings.Contains(out, "leaf.pem: OK") {
		t.Fatalf("openssl verify of the CMS signer: %v\n%s", err, out)
	}
}

// DER content octets of the OIDs the CMS test expects.
var (
	oidSMData     = []byte{0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x06, 0x01, 0x04, 0x02, 0x01} // 1.2.156.10197.6.1.4.2.1
	oidSM2Sign    = []byte{0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x82, 0x2d, 0x01}       // 1.2.156.10197.1.301.1 (SM2-1, GB/T 35275)
	oidSM2WithSM3 = []byte{0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x83, 0x75}             // 1.2.156.10197.1.501
)

type cmsParts struct {
	signedAttrs        []byte // re-tagged as the DER SET that was signed
	signature          []byte
	signatureAlgorithm []byte
	messageDigest      []byte
	contentType        []byte
	signerCert         []byte
}

// cmsSignerParts walks ContentInfo → SignedData → the only SignerInfo with
// cryptobyte, independently of the pkcs7 package that wrote it.
func cmsSignerParts(t *testing.T, der []byte) cmsParts {
	t.Helper()
	var p cmsParts
	in := cryptobyte.String(der)
	var ci, sd, certs, infos, si cryptobyte.String
	var oid asn1.ObjectIdentifier
	if !in.ReadASN1(&ci, cbasn1.SEQUENCE) || !ci.ReadASN1ObjectIdentifier(&oid) ||
		!ci.ReadASN1(&sd, cbasn1.Tag(0).Constructed().ContextSpecific()) || !sd.ReadASN1(&sd, cbasn1.SEQUENCE) {
		t.Fatal("CMS: no ContentInfo with SignedData")
	}
	if oid.String() != "1.2.156.10197.6.1.4.2.2" {
		t.Fatalf("CMS content type %s, want GB/T 35275 signedData", oid)
	}
	var version int
	if !sd.ReadASN1Integer(&version) || !sd.SkipASN1(cbasn1.SET) || !sd.SkipASN1(cbasn1.SEQUENCE) ||
		!sd.ReadASN1(&certs, cbasn1.Tag(0).Constructed().ContextSpecific()) {
		t.Fatal("CMS: SignedData has no certificates")
	}
	sd.SkipOptionalASN1(cbasn1.Tag(1).Constructed().ContextSpecific())
	if !sd.ReadASN1(&infos, cbasn1.SET) || !infos.ReadASN1(&si, cbasn1.SEQUENCE) || !infos.Empty() {
		t.Fatal("CMS: want exactly one SignerInfo")
	}
	var sid, attrs, sigAlg cryptobyte.String
	var attrsTLV []byte
	if !si.ReadASN1Integer(&version) || !si.ReadASN1(&sid, cbasn1.SEQUENCE) || !si.SkipASN1(cbasn1.SEQUENCE) ||
		!si.ReadASN1Element((*cryptobyte.String)(&attrsTLV), cbasn1.Tag(0).Constructed().ContextSpecific()) ||
		!si.ReadASN1(&sigAlg, cbasn1.SEQUENCE) || !sigAlg.ReadASN1Bytes(&p.signatureAlgorithm, cbasn1.OBJECT_IDENTIFIER) ||
		!si.ReadASN1Bytes(&p.signature, cbasn1.OCTET_STRING) {
		t.Fatal("CMS: SignerInfo lacks signed attributes or signature")
	}
	// RFC 5652 §5.4: the signature is over the attributes encoded as an
	// explicit SET OF, not with the [0] IMPLICIT tag they travel under.
	p.signedAttrs = append([]byte{0x31}, attrsTLV[1:]...)
	attrs = cryptobyte.String(attrsTLV)
	attrs.ReadASN1(&attrs, cbasn1.Tag(0).Constructed().ContextSpecific())
	for !attrs.Empty() {
		var attr, values cryptobyte.String
		var aoid asn1.ObjectIdentifier
		if !attrs.ReadASN1(&attr, cbasn1.SEQUENCE) || !attr.ReadASN1ObjectIdentifier(&aoid) || !attr.ReadASN1(&values, cbasn1.SET) {
			t.Fatal("CMS: malformed signed attribute")
		}
		switch aoid.String() {
		case "1.2.840.113549.1.9.4":
			values.ReadASN1Bytes(&p.messageDigest, cbasn1.OCTET_STRING)
		case "1.2.840.113549.1.9.3":
			values.ReadASN1Bytes(&p.contentType, cbasn1.OBJECT_IDENTIFIER)
		}
	}
	// The signer is identified by issuer and serial; find its certificate.
	var issuer cryptobyte.String
	var serial []byte
	if !sid.ReadASN1Element(&issuer, cbasn1.SEQUENCE) || !sid.ReadASN1Bytes(&serial, cbasn1.INTEGER) {
		t.Fatal("CMS: signer identifier is not issuerAndSerialNumber")
	}
	for !certs.Empty() {
		var c cryptobyte.String
		if !certs.ReadASN1Element(&c, cbasn1.SEQUENCE) {
			t.Fatal("CMS: malformed certificate")
		}
		if pc, err := smx509.ParseCertificate(c); err == nil && bytes.Equal(pc.RawIssuer, issuer) &&
			bytes.Equal(pc.SerialNumber.Bytes(), bytes.TrimLeft(serial, "\x00")) {
			p.signerCert = c
		}
	}
	return p
}

// tamper flips one bit in the last byte of a copy.
func tamper(b []byte) []byte {
	c := bytes.Clone(b)
	c[len(c)-1] ^= 1
	return c
}
