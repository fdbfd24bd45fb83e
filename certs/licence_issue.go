package certs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/emmansun/gmsm/sm2"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/users"
)

// IssueLicenceRequest asks for a new licence (GB/T 36903 metadata).
type IssueLicenceRequest struct {
	TypeCode         string            `json:"type_code"`
	LicenceName      string            `json:"licence_name"`   // empty: the type's name
	LicenceNumber    string            `json:"licence_number"` // the department's own number; empty: the serial
	HolderName       string            `json:"holder_name"`
	HolderIDType     string            `json:"holder_id_type"` // HolderResidentID or HolderCreditCode
	HolderIDNumber   string            `json:"holder_id_number"`
	IssuerName       string            `json:"issuer_name"`
	IssuerCreditCode string            `json:"issuer_credit_code"`
	IssueDate        string            `json:"issue_date"` // YYYY-MM-DD; empty: today
	ValidFrom        string            `json:"valid_from"` // YYYY-MM-DD; empty: the issue date
	ValidTo          string            `json:"valid_to"`   // YYYY-MM-DD; empty: no end
	Fields           map[string]string `json:"fields"`
	// ClientID is the department client issuing; only it may later change the licence.
	ClientID string `json:"-"`
}

// IssueLicence checks the request, assigns the serial (year + 7-digit
// sequence per type and issuer), signs the canonical encoding with the
// issuer's organisation certificate and stores the licence, all in one
// transaction with its audit record.
func (l *Licences) IssueLicence(ctx context.Context, req IssueLicenceRequest) (*Licence, error) {
	lic, err := l.checkIssue(ctx, req)
	if err != nil {
		return nil, err
	}
	err = l.store.db.InTx(ctx, func(ctx context.Context) error {
		year := l.ca.now().In(chinaTime).Year()
		n, err := l.store.nextSerial(ctx, lic.TypeCode, lic.IssuerCreditCode, year)
		if err != nil {
			return err
		}
		lic.Serial = fmt.Sprintf("%04d%07d", year, n)
		if lic.LicenceNumber == "" {
			lic.LicenceNumber = lic.Serial
		}
		if err := l.sealAndStore(ctx, lic); err != nil {
			return err
		}
		return l.audit(ctx, req.ClientID, "licence.issue", lic.Identifier, map[string]string{
			"type_code": lic.TypeCode, "issuer_credit_code": lic.IssuerCreditCode, "certificate_id": lic.CertificateID})
	})
	if err != nil {
		return nil, err
	}
	return lic, nil
}

// checkIssue validates a request against its type and builds the unsigned licence.
func (l *Licences) checkIssue(ctx context.Context, req IssueLicenceRequest) (*Licence, error) {
	typ, err := l.store.typeByCode(ctx, req.TypeCode)
	if errors.Is(err, db.ErrNotFound) {
		return nil, wrapInvalid("unknown licence type %q", req.TypeCode)
	}
	if err != nil {
		return nil, err
	}
	holder, err := normalizeHolder(req.HolderIDType, req.HolderIDNumber)
	if err != nil {
		return nil, err
	}
	issuer, err := users.NormalizeCreditCode(req.IssuerCreditCode)
	if err != nil {
		return nil, wrapInvalid("issuer_credit_code: %v", err)
	}
	if req.HolderName == "" || req.IssuerName == "" {
		return nil, wrapInvalid("holder_name and issuer_name are required")
	}
	if err := checkLicenceText(req); err != nil {
		return nil, err
	}
	lic := &Licence{TypeCode: typ.TypeCode, Version: "001", LicenceName: req.LicenceName, LicenceNumber: req.LicenceNumber,
		HolderName: req.HolderName, HolderIDType: req.HolderIDType, HolderIDNumber: holder,
		IssuerName: req.IssuerName, IssuerCreditCode: issuer, IssueDate: req.IssueDate, ValidFrom: req.ValidFrom,
		ValidTo: req.ValidTo, Fields: req.Fields, ClientID: req.ClientID}
	if lic.LicenceName == "" {
		lic.LicenceName = typ.Name
	}
	if lic.IssueDate == "" {
		lic.IssueDate = l.today()
	}
	if lic.ValidFrom == "" {
		lic.ValidFrom = lic.IssueDate
	}
	if err := checkDates(lic.IssueDate, lic.ValidFrom, lic.ValidTo); err != nil {
		return nil, err
	}
	if err := checkFields(typ, lic.Fields); err != nil {
		return nil, err
	}
	return lic, nil
}

// Limits of a licence's text, in characters: a licence is printed and
// shown on a phone, and its canonical form is signed, so nothing in it may
// be a megabyte of text or carry control characters.
const (
	MaxLicenceName   = 128 // licence_name, holder_name, issuer_name
	MaxLicenceNumber = 64  // licence_number
	MaxLicenceField  = 1000
	MaxLicenceFields = 50
)

// checkLicenceText bounds the free text of a request.
func checkLicenceText(req IssueLicenceRequest) error {
	check := func(name, v string, limit int) error {
		if !utf8.ValidString(v) || utf8.RuneCountInString(v) > limit || strings.ContainsFunc(v, unicode.IsControl) {
			return wrapInvalid("%s must be valid UTF-8 text of at most %d characters without control characters", name, limit)
		}
		return nil
	}
	for _, f := range []struct {
		name, v string
		limit   int
	}{
		{"licence_name", req.LicenceName, MaxLicenceName},
		{"holder_name", req.HolderName, MaxLicenceName},
		{"issuer_name", req.IssuerName, MaxLicenceName},
		{"licence_number", req.LicenceNumber, MaxLicenceNumber},
	} {
		if err := check(f.name, f.v, f.limit); err != nil {
			return err
		}
	}
	if len(req.Fields) > MaxLicenceFields {
		return wrapInvalid("at most %d fields", MaxLicenceFields)
	}
	for k, v := range req.Fields {
		if err := check("fields."+k, v, MaxLicenceField); err != nil {
			return err
		}
	}
	return nil
}

func checkDates(issue, from, to string) error {
	for name, v := range map[string]string{"issue_date": issue, "valid_from": from, "valid_to": to} {
		if v == "" && name == "valid_to" {
			continue
		}
		if _, err := time.Parse(time.DateOnly, v); err != nil {
			return wrapInvalid("%s must be a date YYYY-MM-DD, got %q", name, v)
		}
	}
	if to != "" && to < from {
		return wrapInvalid("valid_to %s is before valid_from %s", to, from)
	}
	return nil
}

// checkFields insists on the type's required fields and refuses unknown ones.
func checkFields(typ *LicenceType, fields map[string]string) error {
	known := map[string]bool{}
	for _, f := range typ.Fields {
		known[f.Name] = true
		if f.Required && fields[f.Name] == "" {
			return wrapInvalid("field %q is required by licence type %s", f.Name, typ.TypeCode)
		}
	}
	for name := range fields {
		if !known[name] {
			return wrapInvalid("field %q is not defined by licence type %s", name, typ.TypeCode)
		}
	}
	return nil
}

// sealAndStore gives the licence its identifier, signs it with the issuer's
// certificate, seals the holder's number and inserts the row. The caller
// holds the transaction.
func (l *Licences) sealAndStore(ctx context.Context, lic *Licence) error {
	id, err := LicenceIdentifier(lic.TypeCode, lic.IssuerCreditCode, lic.Serial, lic.Version)
	if err != nil {
		return err
	}
	lic.Identifier = id
	if lic.CertificateID, err = l.issuerCertificate(ctx, lic.IssuerName, lic.IssuerCreditCode); err != nil {
		return err
	}
	if lic.SignedData, err = CanonicalLicence(lic); err != nil {
		return err
	}
	if lic.Signature, err = l.ca.Sign(ctx, lic.CertificateID, lic.SignedData); err != nil {
		return err
	}
	if lic.holderIDEnc, err = l.kek.Seal([]byte(lic.HolderIDNumber), holderAAD(id)); err != nil {
		return err
	}
	lic.Status = LicenceValid
	lic.CreatedAt = l.ca.now()
	return l.store.insertLicence(ctx, lic, l.holderIndex(lic.HolderIDType, lic.HolderIDNumber))
}

// SuspendLicence suspends a valid licence; clientID, when not empty, must
// be the client that issued it.
func (l *Licences) SuspendLicence(ctx context.Context, clientID, identifier, reason string) (*Licence, error) {
	return l.changeStatus(ctx, clientID, identifier, LicenceSuspended, reason, "licence.suspend", LicenceValid)
}

// RevokeLicence ends a valid or suspended licence with status code 03
// (revoked), 04 (cancelled) or 07 (revoked by penalty).
func (l *Licences) RevokeLicence(ctx context.Context, clientID, identifier, code, reason string) (*Licence, error) {
	to, ok := revocationCodes[code]
	if !ok {
		return nil, wrapInvalid("status code must be 03 (revoked), 04 (cancelled) or 07 (revoked by penalty), got %q", code)
	}
	return l.changeStatus(ctx, clientID, identifier, to, reason, "licence.revoke", LicenceValid, LicenceSuspended)
}

func (l *Licences) changeStatus(ctx context.Context, clientID, identifier string, to LicenceStatus, reason, action string, from ...LicenceStatus) (*Licence, error) {
	var lic *Licence
	err := l.store.db.InTx(ctx, func(ctx context.Context) error {
		var err error
		if lic, err = l.lockForChange(ctx, clientID, identifier); err != nil {
			return err
		}
		if !l.statusIn(lic, from) {
			return fmt.Errorf("%w: it is %s", ErrLicenceState, l.effectiveStatus(lic))
		}
		at := l.ca.now()
		if err := l.store.setStatus(ctx, lic.Identifier, to, reason, at, ""); err != nil {
			return err
		}
		lic.Status, lic.StatusReason, lic.StatusAt = to, reason, &at
		return l.audit(ctx, clientID, action, lic.Identifier, map[string]string{"status": string(to), "reason": reason})
	})
	if err != nil {
		return nil, err
	}
	return lic, nil
}

// statusIn compares the effective status, so an expired licence cannot be suspended.
func (l *Licences) statusIn(lic *Licence, allowed []LicenceStatus) bool {
	st := l.effectiveStatus(lic)
	for _, a := range allowed {
		if st == a {
			return true
		}
	}
	return false
}

// lockForChange loads a licence for update and checks the caller issued it.
func (l *Licences) lockForChange(ctx context.Context, clientID, identifier string) (*Licence, error) {
	p, err := ParseLicenceIdentifier(identifier)
	if err != nil {
		return nil, err
	}
	lic, err := l.store.licenceForUpdate(ctx, p.String())
	if err != nil {
		return nil, err
	}
	if clientID != "" && lic.ClientID != clientID {
		return nil, fmt.Errorf("%w: licence %s was issued by another client", ErrForbidden, lic.Identifier)
	}
	return lic, nil
}

// RenewRequest gives a renewed licence its new dates and, optionally, new field values.
type RenewRequest struct {
	IssueDate string            `json:"issue_date"` // empty: today
	ValidFrom string            `json:"valid_from"` // empty: the issue date
	ValidTo   string            `json:"valid_to"`   // empty: no end
	Fields    map[string]string `json:"fields"`     // nil: the previous version's
}

// RenewLicence issues the next version of a valid or expired licence with
// the same serial, linked to the previous one, which becomes superseded.
func (l *Licences) RenewLicence(ctx context.Context, clientID, identifier string, req RenewRequest) (*Licence, error) {
	var next *Licence
	err := l.store.db.InTx(ctx, func(ctx context.Context) error {
		prev, err := l.lockForChange(ctx, clientID, identifier)
		if err != nil {
			return err
		}
		if !l.statusIn(prev, []LicenceStatus{LicenceValid, LicenceExpired}) {
			return fmt.Errorf("%w: it is %s", ErrLicenceState, l.effectiveStatus(prev))
		}
		if next, err = l.renewal(ctx, prev, req); err != nil {
			return err
		}
		if err := l.sealAndStore(ctx, next); err != nil {
			return err
		}
		if err := l.store.setStatus(ctx, prev.Identifier, LicenceSuperseded, "renewed", next.CreatedAt, next.Identifier); err != nil {
			return err
		}
		return l.audit(ctx, clientID, "licence.renew", next.Identifier, map[string]string{"previous_identifier": prev.Identifier})
	})
	if err != nil {
		return nil, err
	}
	return next, nil
}

// renewal builds the unsigned next version of prev.
func (l *Licences) renewal(ctx context.Context, prev *Licence, req RenewRequest) (*Licence, error) {
	if err := l.openHolder(prev); err != nil {
		return nil, err
	}
	version, err := nextVersion(prev.Version)
	if err != nil {
		return nil, err
	}
	next := *prev
	next.Version, next.PreviousIdentifier, next.SupersededBy = version, prev.Identifier, ""
	next.StatusReason, next.StatusAt = "", nil
	next.IssueDate, next.ValidFrom, next.ValidTo = req.IssueDate, req.ValidFrom, req.ValidTo
	if next.IssueDate == "" {
		next.IssueDate = l.today()
	}
	if next.ValidFrom == "" {
		next.ValidFrom = next.IssueDate
	}
	if err := checkDates(next.IssueDate, next.ValidFrom, next.ValidTo); err != nil {
		return nil, err
	}
	if req.Fields != nil {
		typ, err := l.store.typeByCode(ctx, prev.TypeCode)
		if err != nil {
			return nil, err
		}
		if err := checkFields(typ, req.Fields); err != nil {
			return nil, err
		}
		next.Fields = req.Fields
	}
	return &next, nil
}

// LicenceStatusReport is the public answer about one licence version.
type LicenceStatusReport struct {
	Identifier       string        `json:"identifier"`
	Status           LicenceStatus `json:"status"`
	StatusCode       string        `json:"status_code,omitempty"` // 03, 04, 05 or 07
	Issuer           string        `json:"issuer"`
	IssuerCreditCode string        `json:"issuer_credit_code"`
	ValidFrom        string        `json:"valid_from"`
	ValidTo          string        `json:"valid_to,omitempty"`
	Version          string        `json:"version"`
	SupersededBy     string        `json:"superseded_by,omitempty"`
}

// LicenceStatusOf reports a licence's current status; db.ErrNotFound for an
// unknown one, ErrLicenceIdentifier for a malformed identifier.
func (l *Licences) LicenceStatusOf(ctx context.Context, identifier string) (*LicenceStatusReport, error) {
	p, err := ParseLicenceIdentifier(identifier)
	if err != nil {
		return nil, err
	}
	lic, err := l.store.licence(ctx, p.String())
	if err != nil {
		return nil, err
	}
	return l.report(lic), nil
}

func (l *Licences) report(lic *Licence) *LicenceStatusReport {
	st := l.effectiveStatus(lic)
	return &LicenceStatusReport{Identifier: lic.Identifier, Status: st, StatusCode: statusCode(st),
		Issuer: lic.IssuerName, IssuerCreditCode: lic.IssuerCreditCode, ValidFrom: lic.ValidFrom, ValidTo: lic.ValidTo,
		Version: lic.Version, SupersededBy: lic.SupersededBy}
}

func statusCode(st LicenceStatus) string {
	switch st {
	case LicenceRevoked:
		return "03"
	case LicenceCancelled:
		return "04"
	case LicenceExpired:
		return "05"
	case LicenceRevokedByPenalty:
		return "07"
	}
	return ""
}

// Verification outcomes of VerifyLicence.
const (
	VerdictValid      = "valid"
	VerdictExpired    = "expired"
	VerdictRevoked    = "revoked" // also cancelled (04) and revoked by penalty (07): see status_code
	VerdictSuspended  = "suspended"
	VerdictSuperseded = "superseded"
	VerdictNotFound   = "not_found"
	VerdictForged     = "forged"
)

// LicenceVerification is the answer of VerifyLicence.
type LicenceVerification struct {
	Result string `json:"result"`
	// Licence is the stored status; absent when not found or forged.
	Licence *LicenceStatusReport `json:"licence,omitempty"`
	// Issuer names who the data claims issued it.
	Issuer           string `json:"issuer,omitempty"`
	IssuerCreditCode string `json:"issuer_credit_code,omitempty"`
	// Shown is what a QR payload reveals: the shareable fields only.
	Shown *ShownLicence `json:"shown,omitempty"`
}

// VerifyLicence checks signed licence data (the canonical JSON and the raw
// SM2 signature): forged unless the signature verifies with the
// certificate that sealed that licence and the data is exactly what was
// signed; otherwise the licence's current status. Data that is not a
// licence or names a malformed identifier is ErrInvalid/ErrLicenceIdentifier.
func (l *Licences) VerifyLicence(ctx context.Context, data, signature []byte) (*LicenceVerification, error) {
	var sl signedLicence
	// Unknown keys are left to the signature check: added keys read as forged.
	if err := json.Unmarshal(data, &sl); err != nil {
		return nil, wrapInvalid("licence data is not a licence JSON object: %v", err)
	}
	p, err := ParseLicenceIdentifier(sl.Identifier)
	if err != nil {
		return nil, err
	}
	out := &LicenceVerification{Issuer: sl.IssuerName, IssuerCreditCode: sl.IssuerCreditCode}
	lic, err := l.store.licence(ctx, p.String())
	if errors.Is(err, db.ErrNotFound) {
		out.Result = VerdictNotFound
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	ok, err := l.signatureMatches(ctx, lic, data, signature)
	if err != nil {
		return nil, err
	}
	if !ok {
		out.Result = VerdictForged
		return out, nil
	}
	out.Licence = l.report(lic)
	out.Result = verdict(out.Licence.Status)
	return out, nil
}

// signatureMatches verifies the signature with the sealing certificate and
// insists the data is the stored signed data.
func (l *Licences) signatureMatches(ctx context.Context, lic *Licence, data, signature []byte) (bool, error) {
	rec, err := l.ca.store.byID(ctx, lic.CertificateID)
	if err != nil {
		return false, err
	}
	cert, err := rec.Parsed()
	if err != nil {
		return false, err
	}
	pub, ok := isSM2Key(cert.PublicKey)
	if !ok {
		return false, nil
	}
	if !sm2.VerifyASN1WithSM2(pub, nil, data, signature) {
		return false, nil
	}
	return bytes.Equal(data, lic.SignedData), nil
}

func verdict(st LicenceStatus) string {
	switch st {
	case LicenceValid:
		return VerdictValid
	case LicenceExpired:
		return VerdictExpired
	case LicenceSuspended:
		return VerdictSuspended
	case LicenceSuperseded:
		return VerdictSuperseded
	}
	return VerdictRevoked
}
