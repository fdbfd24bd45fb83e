package certs

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/kek"
	"github.com/govsso/sso/users"
)

// Holder identifier types (GB/T 36903 持证主体代码类型).
const (
	HolderResidentID = "resident_id" // resident ID number, GB 11643
	HolderCreditCode = "credit_code" // unified social credit code, GB 32100
)

// LicenceStatus is where a licence stands in its lifecycle.
type LicenceStatus string

// The statuses of a licence. Expired is never stored: a valid licence past
// its valid_to date reads as expired.
const (
	LicenceValid            LicenceStatus = "valid"
	LicenceSuspended        LicenceStatus = "suspended"
	LicenceRevoked          LicenceStatus = "revoked"            // code 03 撤销
	LicenceCancelled        LicenceStatus = "cancelled"          // code 04 注销
	LicenceExpired          LicenceStatus = "expired"            // code 05 失效
	LicenceRevokedByPenalty LicenceStatus = "revoked_by_penalty" // code 07 吊销
	LicenceSuperseded       LicenceStatus = "superseded"         // renewed: a newer version replaces it
)

// revocationCodes maps the status codes of the notes to the statuses RevokeLicence sets.
var revocationCodes = map[string]LicenceStatus{"03": LicenceRevoked, "04": LicenceCancelled, "07": LicenceRevokedByPenalty}

// Errors of the licence service.
var (
	// ErrLicenceState means the licence's status does not allow the change.
	ErrLicenceState = errors.New("certs: the licence's status does not allow this")
	// ErrForbidden means the caller may not act on this licence.
	ErrForbidden = errors.New("certs: not allowed")
)

// LicenceField defines one field that licences of a type carry (GB/T 36902).
type LicenceField struct {
	Name     string `json:"name"`
	Label    string `json:"label"`
	Required bool   `json:"required"`
	// Shareable lets every verifier see the field; the others are shown
	// only to the holder and to clients the holder consented to.
	Shareable bool `json:"shareable,omitempty"`
}

// LicenceType is a registered kind of licence.
type LicenceType struct {
	TypeCode               string         `json:"type_code"`
	Name                   string         `json:"name"`
	DefiningBodyCreditCode string         `json:"defining_body_credit_code"`
	Fields                 []LicenceField `json:"fields"`
	CreatedAt              time.Time      `json:"created_at"`
}

// Licence is one version of an issued licence.
type Licence struct {
	Identifier         string            `json:"identifier"`
	TypeCode           string            `json:"type_code"`
	Serial             string            `json:"serial"`
	Version            string            `json:"version"`
	PreviousIdentifier string            `json:"previous_identifier,omitempty"`
	SupersededBy       string            `json:"superseded_by,omitempty"`
	LicenceName        string            `json:"licence_name"`
	LicenceNumber      string            `json:"licence_number"`
	HolderName         string            `json:"holder_name"`
	HolderIDType       string            `json:"holder_id_type"`
	HolderIDNumber     string            `json:"-"` // personal data: only inside SignedData
	IssuerName         string            `json:"issuer_name"`
	IssuerCreditCode   string            `json:"issuer_credit_code"`
	IssueDate          string            `json:"issue_date"`
	ValidFrom          string            `json:"valid_from"`
	ValidTo            string            `json:"valid_to,omitempty"`
	Fields             map[string]string `json:"fields"`
	Status             LicenceStatus     `json:"status"`
	StatusReason       string            `json:"status_reason,omitempty"`
	StatusAt           *time.Time        `json:"status_at,omitempty"`
	SignedData         []byte            `json:"signed_data"` // canonical JSON, see CanonicalLicence
	Signature          []byte            `json:"signature"`   // raw SM2 DER over SignedData
	CertificateID      string            `json:"certificate_id"`
	ClientID           string            `json:"client_id,omitempty"`
	CreatedAt          time.Time         `json:"created_at"`

	holderIDEnc []byte // the holder's number sealed under the KEK
}

// LicenceConfig is what the licence service needs besides the CA.
type LicenceConfig struct {
	// Authenticate says which client calls and with which scopes; an error
	// answers 401. cmd/sso reads a Bearer access token.
	Authenticate func(r *http.Request) (clientID string, scopes []string, err error)
	// AuthenticatePerson reads a person's access token: the client, the
	// account ("" for a client's own token) and the scopes. The holder
	// endpoints (scope licences:read) need it.
	AuthenticatePerson func(r *http.Request) (clientID, userID string, scopes []string, err error)
	// ResolveSubject maps the sub a client knows a person by to the account
	// id, for a client that reads with its own token and ?sub=;
	// db.ErrNotFound when it names nobody.
	ResolveSubject func(ctx context.Context, clientID, sub string) (string, error)
	// Users reads the holder's account.
	Users interface {
		Get(ctx context.Context, id string) (*users.User, error)
	}
	// Enterprises finds an enterprise account's credit code (its licences
	// are held under it) and says whether a person may act for it; nil
	// means enterprise accounts hold no licences here.
	Enterprises interface {
		Get(ctx context.Context, id string) (*users.Enterprise, error)
		CheckAgent(ctx context.Context, enterpriseID, userID string) error
	}
	// ActingFor says which enterprise account the request's access token
	// was issued to act for ("" when none); the holder endpoints then
	// read that enterprise's licences, while the person may still act for it.
	ActingFor func(r *http.Request) (string, error)
}

// Licences issues, verifies and manages electronic licences sealed by the
// issuing authority's organisation certificate.
type Licences struct {
	ca       *Service
	store    *licenceStore
	kek      *kek.KEK
	indexKey []byte
	qrKey    []byte
	cfg      LicenceConfig
}

// NewLicences builds the licence service on the CA service.
func NewLicences(ca *Service, k *kek.KEK, cfg LicenceConfig) *Licences {
	return &Licences{ca: ca, store: &licenceStore{db: ca.store.db}, kek: k,
		indexKey: k.Derive("sso certs licence holder index"), qrKey: k.Derive("sso certs licence qr"), cfg: cfg}
}

// CreateLicenceType registers a licence type; its code must start with the
// defining body's credit code.
func (l *Licences) CreateLicenceType(ctx context.Context, t LicenceType) (*LicenceType, error) {
	return l.CreateLicenceTypeAs(ctx, "system", t)
}

// CreateLicenceTypeAs is CreateLicenceType recording actor ("cli",
// "user:<id>", ...) as who registered the type.
func (l *Licences) CreateLicenceTypeAs(ctx context.Context, actor string, t LicenceType) (*LicenceType, error) {
	if err := ValidLicenceTypeCode(t.TypeCode); err != nil {
		return nil, wrapInvalid("%v", err)
	}
	if t.Name == "" {
		return nil, wrapInvalid("licence type needs a name")
	}
	if t.DefiningBodyCreditCode != t.TypeCode[:18] {
		return nil, wrapInvalid("type code must start with the defining body's credit code %s", t.DefiningBodyCreditCode)
	}
	if err := checkLicenceType(t); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, f := range t.Fields {
		if f.Name == "" || seen[f.Name] {
			return nil, wrapInvalid("field names must be present and distinct (%q)", f.Name)
		}
		seen[f.Name] = true
	}
	t.CreatedAt = l.ca.now()
	err := l.store.db.InTx(ctx, func(ctx context.Context) error {
		if err := l.store.insertType(ctx, &t); err != nil {
			return err
		}
		return l.auditAs(ctx, actor, "licence.type.create", t.TypeCode, map[string]string{"name": t.Name, "fields": fmt.Sprint(len(t.Fields))})
	})
	if errors.Is(err, db.ErrConflict) {
		return nil, fmt.Errorf("%w: licence type %s already exists", ErrLicenceTypeExists, t.TypeCode)
	}
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// LicenceType returns a registered type.
func (l *Licences) LicenceType(ctx context.Context, code string) (*LicenceType, error) {
	return l.store.typeByCode(ctx, code)
}

// Licence returns one licence version with the holder's number opened.
func (l *Licences) Licence(ctx context.Context, identifier string) (*Licence, error) {
	p, err := ParseLicenceIdentifier(identifier)
	if err != nil {
		return nil, err
	}
	lic, err := l.store.licence(ctx, p.String())
	if err != nil {
		return nil, err
	}
	return lic, l.openHolder(lic)
}

// effectiveStatus turns a valid licence past its end date into expired.
// Dates are China Standard Time calendar dates.
func (l *Licences) effectiveStatus(lic *Licence) LicenceStatus {
	if lic.Status == LicenceValid && lic.ValidTo != "" && lic.ValidTo < l.today() {
		return LicenceExpired
	}
	return lic.Status
}

// chinaTime is UTC+8, the zone licence dates are written in.
var chinaTime = time.FixedZone("CST", 8*3600)

func (l *Licences) today() string { return l.ca.now().In(chinaTime).Format(time.DateOnly) }

// audit records a licence action in the caller's transaction; the actor
// is "client:<id>" as in the admin API, or "system" for a call without one.
func (l *Licences) audit(ctx context.Context, clientID, action, subject string, details map[string]string) error {
	if l.ca.cfg.Audit == nil {
		return nil
	}
	actor := "system"
	if clientID != "" {
		actor = "client:" + clientID
	}
	_, err := l.ca.cfg.Audit.Append(ctx, audit.Event{Actor: actor, ClientID: clientID, Action: action, Subject: subject,
		Result: audit.ResultSuccess, Details: details})
	return err
}

// holderAAD binds a sealed holder number to its licence row.
func holderAAD(identifier string) []byte { return []byte("certs.licences.holder:" + identifier) }

func (l *Licences) holderIndex(idType, number string) string {
	m := hmac.New(sha256.New, l.indexKey)
	m.Write([]byte(idType + ":" + number))
	return hex.EncodeToString(m.Sum(nil))
}

func (l *Licences) openHolder(lic *Licence) error {
	plain, err := l.kek.Open(lic.holderIDEnc, holderAAD(lic.Identifier))
	if err != nil {
		return fmt.Errorf("certs: open licence holder number: %w", err)
	}
	lic.HolderIDNumber = string(plain)
	return nil
}

// normalizeHolder checks the holder's number against its type.
func normalizeHolder(idType, number string) (string, error) {
	switch idType {
	case HolderResidentID:
		n, err := users.NormalizeIDNumber(number)
		if err != nil {
			return "", wrapInvalid("holder_id_number: %v", err)
		}
		return n, nil
	case HolderCreditCode:
		n, err := users.NormalizeCreditCode(number)
		if err != nil {
			return "", wrapInvalid("holder_id_number: %v", err)
		}
		return n, nil
	}
	return "", wrapInvalid("holder_id_type must be %q or %q", HolderResidentID, HolderCreditCode)
}

// CanonicalLicence is the byte string a licence's signature covers: a JSON
// object with keys sorted by byte order, no insignificant spaces, no HTML
// escaping, every value a string except "fields" (an object of strings,
// keys sorted alike). Keys: fields, holder_id_number, holder_id_type,
// holder_name, identifier, issue_date, issuer_credit_code, issuer_name,
// licence_name, licence_number, previous_identifier, type_code, valid_from,
// valid_to, version — the GB/T 36903 metadata, the type's fields, the
// identifier and the version. An absent value is "".
func CanonicalLicence(lic *Licence) ([]byte, error) {
	fields := lic.Fields
	if fields == nil {
		fields = map[string]string{}
	}
	m := map[string]any{
		"fields": fields, "holder_id_number": lic.HolderIDNumber, "holder_id_type": lic.HolderIDType,
		"holder_name": lic.HolderName, "identifier": lic.Identifier, "issue_date": lic.IssueDate,
		"issuer_credit_code": lic.IssuerCreditCode, "issuer_name": lic.IssuerName, "licence_name": lic.LicenceName,
		"licence_number": lic.LicenceNumber, "previous_identifier": lic.PreviousIdentifier, "type_code": lic.TypeCode,
		"valid_from": lic.ValidFrom, "valid_to": lic.ValidTo, "version": lic.Version,
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // encoding/json sorts map keys and adds no spaces
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// signedLicence is the decoded canonical JSON of a licence.
type signedLicence struct {
	Fields             map[string]string `json:"fields"`
	HolderIDNumber     string            `json:"holder_id_number"`
	HolderIDType       string            `json:"holder_id_type"`
	HolderName         string            `json:"holder_name"`
	Identifier         string            `json:"identifier"`
	IssueDate          string            `json:"issue_date"`
	IssuerCreditCode   string            `json:"issuer_credit_code"`
	IssuerName         string            `json:"issuer_name"`
	LicenceName        string            `json:"licence_name"`
	LicenceNumber      string            `json:"licence_number"`
	PreviousIdentifier string            `json:"previous_identifier"`
	TypeCode           string            `json:"type_code"`
	ValidFrom          string            `json:"valid_from"`
	ValidTo            string            `json:"valid_to"`
	Version            string            `json:"version"`
}

// nextVersion is "002" after "001".
func nextVersion(v string) (string, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n >= 999 {
		return "", wrapInvalid("version %q cannot be followed", v)
	}
	return fmt.Sprintf("%03d", n+1), nil
}

// issuerCertificate returns the organisation certificate that seals the
// issuer's licences, issuing one (subject O and CN the issuer's name,
// serialNumber its credit code) when the issuer has none usable yet.
func (l *Licences) issuerCertificate(ctx context.Context, name, creditCode string) (string, error) {
	id, err := l.store.issuerCertificate(ctx, creditCode)
	if err == nil {
		rec, err := l.ca.store.byID(ctx, id)
		if err != nil {
			return "", err
		}
		now := l.ca.now()
		if rec.Status == StatusActive && now.After(rec.NotBefore) && now.Before(rec.NotAfter) {
			return id, nil
		}
	} else if !errors.Is(err, db.ErrNotFound) {
		return "", err
	}
	cert, err := l.ca.Issue(ctx, IssueRequest{
		Subject: pkix.Name{CommonName: name, Organization: []string{name}, SerialNumber: creditCode},
		Kind:    KindOrg,
	})
	if err != nil {
		return "", fmt.Errorf("certs: organisation certificate for %s: %w", creditCode, err)
	}
	if err := l.store.setIssuerCertificate(ctx, creditCode, cert.ID); err != nil {
		return "", err
	}
	return cert.ID, nil
}
