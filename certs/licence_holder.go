package certs

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emmansun/gmsm/sm3"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/users"
)

// ScopeLicencesRead lets a client read, with the holder's access token, the
// licences of the types the holder consented to.
const ScopeLicencesRead = "licences:read"

// LicenceQRTTL is how long a QR payload shown at a counter stays good.
const LicenceQRTTL = 5 * time.Minute

// ErrNoLicenceConsent means the holder has not let this client read
// licences of this type.
var ErrNoLicenceConsent = errors.New("certs: the holder has not consented to this client reading licences of this type")

// LicenceConsent is a holder's consent that a client reads their licences of a type.
type LicenceConsent struct {
	ClientID  string    `json:"client_id"`
	TypeCode  string    `json:"type_code"`
	CreatedAt time.Time `json:"created_at"`
}

// holderIndexOf is the index under which an account's own licences are
// found: a person's verified resident ID number, an enterprise's unified
// social credit code. Below level 2 a person's number is only claimed, so
// nothing is found.
func (l *Licences) holderIndexOf(ctx context.Context, u *users.User) (string, bool, error) {
	if u == nil {
		return "", false, nil
	}
	if u.Kind == users.KindEnterprise {
		if l.cfg.Enterprises == nil {
			return "", false, nil
		}
		ent, err := l.cfg.Enterprises.Get(ctx, u.ID)
		if errors.Is(err, db.ErrNotFound) {
			return "", false, nil
		}
		if err != nil {
			return "", false, err
		}
		code, err := users.NormalizeCreditCode(ent.CreditCode)
		if err != nil {
			return "", false, nil
		}
		return l.holderIndex(HolderCreditCode, code), true, nil
	}
	if u.AssuranceLevel < SignLevel || u.IDNumber == "" {
		return "", false, nil
	}
	n, err := users.NormalizeIDNumber(u.IDNumber)
	if err != nil {
		return "", false, nil
	}
	return l.holderIndex(HolderResidentID, n), true, nil
}

// ActingHolder returns the enterprise account whose licences personID sees
// and consents for while acting for it; users.ErrNotAgent (wrapped) unless
// the person is, right now, its legal representative or an agent, since a
// session keeps its choice after the person's right to act is taken away.
func (l *Licences) ActingHolder(ctx context.Context, personID, enterpriseID string) (*users.User, error) {
	if l.cfg.Enterprises == nil || l.cfg.Users == nil {
		return nil, fmt.Errorf("certs: acting for enterprises is not configured: %w", users.ErrNotAgent)
	}
	if err := l.cfg.Enterprises.CheckAgent(ctx, enterpriseID, personID); err != nil {
		return nil, fmt.Errorf("certs: act for %s: %w", enterpriseID, err)
	}
	ent, err := l.cfg.Users.Get(ctx, enterpriseID)
	if err != nil {
		return nil, err
	}
	if ent.Status != users.StatusActive {
		// A disabled or deleted enterprise shares nothing, as the API refuses too.
		return nil, fmt.Errorf("certs: act for %s: enterprise %s: %w", enterpriseID, ent.Status, users.ErrNotAgent)
	}
	return ent, nil
}

// HolderLicences lists the current version of every licence held by the
// account (found by its verified ID number), newest first, with the
// effective status.
func (l *Licences) HolderLicences(ctx context.Context, u *users.User) ([]*Licence, error) {
	idx, ok, err := l.holderIndexOf(ctx, u)
	if err != nil || !ok {
		return []*Licence{}, err
	}
	list, err := l.store.byHolder(ctx, idx)
	if err != nil {
		return nil, err
	}
	for _, lic := range list {
		lic.Status = l.effectiveStatus(lic)
	}
	return list, nil
}

// holderLicence returns one of the account's licences; db.ErrNotFound
// also for a licence of somebody else, so that nobody learns it exists.
func (l *Licences) holderLicence(ctx context.Context, u *users.User, identifier string) (*Licence, error) {
	p, err := ParseLicenceIdentifier(identifier)
	if err != nil {
		return nil, err
	}
	idx, ok, err := l.holderIndexOf(ctx, u)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, db.ErrNotFound
	}
	lic, err := l.store.licence(ctx, p.String())
	if err != nil {
		return nil, err
	}
	if held, err := l.store.heldBy(ctx, lic.Identifier, idx); err != nil || !held {
		return nil, errors.Join(db.ErrNotFound, err)
	}
	lic.Status = l.effectiveStatus(lic)
	return lic, nil
}

// GrantLicenceConsent lets clientID read the holder's licences of a type
// (the holder must hold one); audited licence.consent.grant.
func (l *Licences) GrantLicenceConsent(ctx context.Context, u *users.User, clientID, typeCode string, m users.RequestMeta) error {
	return l.GrantLicenceConsentAs(ctx, u, u.ID, clientID, typeCode, m)
}

// GrantLicenceConsentAs is GrantLicenceConsent made by actorID for the
// holder: a person acting for an enterprise consents for the enterprise
// account, and the audit record names the person as the actor.
func (l *Licences) GrantLicenceConsentAs(ctx context.Context, u *users.User, actorID, clientID, typeCode string, m users.RequestMeta) error {
	if clientID == "" {
		return wrapInvalid("client_id is required")
	}
	if _, err := l.store.typeByCode(ctx, typeCode); errors.Is(err, db.ErrNotFound) {
		return wrapInvalid("type_code %q is not a registered licence type", typeCode)
	} else if err != nil {
		return err
	}
	return l.store.db.InTx(ctx, func(ctx context.Context) error {
		if err := l.store.grantConsent(ctx, u.ID, clientID, typeCode, l.ca.now()); err != nil {
			return err
		}
		return l.holderAuditAs(ctx, actorID, u.ID, clientID, "licence.consent.grant", typeCode, audit.ResultSuccess, m)
	})
}

// RevokeLicenceConsent withdraws a consent; audited licence.consent.revoke.
func (l *Licences) RevokeLicenceConsent(ctx context.Context, userID, clientID, typeCode string, m users.RequestMeta) error {
	return l.RevokeLicenceConsentAs(ctx, userID, userID, clientID, typeCode, m)
}

// RevokeLicenceConsentAs is RevokeLicenceConsent made by actorID for the
// holder userID (a person acting for an enterprise).
func (l *Licences) RevokeLicenceConsentAs(ctx context.Context, userID, actorID, clientID, typeCode string, m users.RequestMeta) error {
	return l.store.db.InTx(ctx, func(ctx context.Context) error {
		if err := l.store.revokeConsent(ctx, userID, clientID, typeCode); err != nil {
			return err
		}
		return l.holderAuditAs(ctx, actorID, userID, clientID, "licence.consent.revoke", typeCode, audit.ResultSuccess, m)
	})
}

// LicenceConsents lists the holder's consents.
func (l *Licences) LicenceConsents(ctx context.Context, userID string) ([]LicenceConsent, error) {
	return l.store.consentsOf(ctx, userID)
}

// LicencesForClient lists the holder's licences of the types the holder
// consented clientID may read; audited licence.read.
func (l *Licences) LicencesForClient(ctx context.Context, clientID string, u *users.User, m users.RequestMeta) ([]*Licence, error) {
	all, err := l.HolderLicences(ctx, u)
	if err != nil {
		return nil, err
	}
	allowed, err := l.allowedTypes(ctx, u.ID, clientID)
	if err != nil {
		return nil, err
	}
	out := []*Licence{}
	for _, lic := range all {
		if allowed[lic.TypeCode] {
			out = append(out, lic)
		}
	}
	err = l.holderAudit(ctx, u.ID, clientID, "licence.read", fmt.Sprintf("%d licences", len(out)), audit.ResultSuccess, m)
	return out, err
}

// LicenceForClient returns one of the holder's licences to clientID when
// the holder consented to its type: ErrNoLicenceConsent otherwise (audited
// as a failure), db.ErrNotFound when the holder holds no such licence.
func (l *Licences) LicenceForClient(ctx context.Context, clientID string, u *users.User, identifier string, m users.RequestMeta) (*Licence, error) {
	lic, err := l.holderLicence(ctx, u, identifier)
	if err != nil {
		return nil, err
	}
	allowed, err := l.allowedTypes(ctx, u.ID, clientID)
	if err != nil {
		return nil, err
	}
	if !allowed[lic.TypeCode] {
		if err := l.holderAudit(ctx, u.ID, clientID, "licence.read", lic.Identifier, audit.ResultFailure, m); err != nil {
			return nil, err
		}
		return nil, ErrNoLicenceConsent
	}
	return lic, l.holderAudit(ctx, u.ID, clientID, "licence.read", lic.Identifier, audit.ResultSuccess, m)
}

func (l *Licences) allowedTypes(ctx context.Context, userID, clientID string) (map[string]bool, error) {
	consents, err := l.store.consentsOf(ctx, userID)
	if err != nil {
		return nil, err
	}
	allowed := map[string]bool{}
	for _, c := range consents {
		if c.ClientID == clientID {
			allowed[c.TypeCode] = true
		}
	}
	return allowed, nil
}

func (l *Licences) holderAudit(ctx context.Context, userID, clientID, action, detail, result string, m users.RequestMeta) error {
	actor := userID
	if action == "licence.read" {
		actor = "client:" + clientID
	}
	return l.holderAuditAs(ctx, actor, userID, clientID, action, detail, result, m)
}

func (l *Licences) holderAuditAs(ctx context.Context, actor, userID, clientID, action, detail, result string, m users.RequestMeta) error {
	if l.ca.cfg.Audit == nil {
		return nil
	}
	_, err := l.ca.cfg.Audit.Append(ctx, audit.Event{Actor: actor, Subject: userID, ClientID: clientID, Action: action,
		Result: result, IP: m.IP, UserAgent: m.UserAgent, Details: map[string]string{"licence": detail}})
	return err
}

// qrClaims is the body of a QR payload: the licence, when the payload ends
// and a nonce so that two payloads of one minute differ.
type qrClaims struct {
	Identifier string `json:"i"`
	Expires    int64  `json:"e"`
	Nonce      string `json:"n"`
}

// LicenceQR makes the short-lived payload a holder shows at a counter as a
// QR code: base64url(JSON {i, e, n}) "." base64url(HMAC-SM3). Only this
// server can check it (POST /certs/api/v1/licences/verify), which then
// answers the licence's current status and its shareable fields.
func (l *Licences) LicenceQR(ctx context.Context, u *users.User, identifier string) (string, time.Time, error) {
	lic, err := l.holderLicence(ctx, u, identifier)
	if err != nil {
		return "", time.Time{}, err
	}
	exp := l.ca.now().Add(LicenceQRTTL).Truncate(time.Second)
	nonce := make([]byte, 9)
	if _, err := rand.Read(nonce); err != nil {
		return "", time.Time{}, err
	}
	body, err := json.Marshal(qrClaims{Identifier: lic.Identifier, Expires: exp.Unix(), Nonce: base64.RawURLEncoding.EncodeToString(nonce)})
	if err != nil {
		return "", time.Time{}, err
	}
	enc := base64.RawURLEncoding.EncodeToString(body)
	if err := l.holderAudit(ctx, u.ID, "", "licence.qr", lic.Identifier, audit.ResultSuccess, users.RequestMeta{}); err != nil {
		return "", time.Time{}, err
	}
	return enc + "." + base64.RawURLEncoding.EncodeToString(l.qrMAC(enc)), exp, nil
}

func (l *Licences) qrMAC(enc string) []byte {
	m := hmac.New(sm3.New, l.qrKey)
	m.Write([]byte("licence-qr." + enc))
	return m.Sum(nil)
}

// VerifyLicenceQR checks a QR payload: forged when its MAC is wrong, an
// ErrInvalid naming the problem when it is malformed or has expired;
// otherwise the licence's current status, its holder and the fields its
// type marks shareable, and nothing else.
func (l *Licences) VerifyLicenceQR(ctx context.Context, payload string) (*LicenceVerification, error) {
	enc, macB64, ok := strings.Cut(strings.TrimSpace(payload), ".")
	if !ok || len(payload) > 1024 {
		return nil, wrapInvalid("qr_payload is not a licence QR payload")
	}
	mac, err := base64.RawURLEncoding.DecodeString(macB64)
	if err != nil {
		return nil, wrapInvalid("qr_payload is not a licence QR payload")
	}
	if !hmac.Equal(mac, l.qrMAC(enc)) {
		return &LicenceVerification{Result: VerdictForged}, nil
	}
	body, err := base64.RawURLEncoding.DecodeString(enc)
	var c qrClaims
	if err != nil || json.Unmarshal(body, &c) != nil {
		return nil, wrapInvalid("qr_payload is not a licence QR payload")
	}
	if exp := time.Unix(c.Expires, 0).UTC(); !l.ca.now().Before(exp) {
		return nil, wrapInvalid("qr_payload expired at %s; ask the holder to show a new code", exp.Format(time.RFC3339))
	}
	lic, err := l.store.licence(ctx, c.Identifier)
	if errors.Is(err, db.ErrNotFound) {
		return &LicenceVerification{Result: VerdictNotFound}, nil
	}
	if err != nil {
		return nil, err
	}
	typ, err := l.store.typeByCode(ctx, lic.TypeCode)
	if err != nil {
		return nil, err
	}
	out := &LicenceVerification{Issuer: lic.IssuerName, IssuerCreditCode: lic.IssuerCreditCode, Licence: l.report(lic),
		Shown: &ShownLicence{LicenceName: lic.LicenceName, LicenceNumber: lic.LicenceNumber, HolderName: lic.HolderName,
			TypeCode: lic.TypeCode, Fields: ShareableFields(typ, lic.Fields)}}
	out.Result = verdict(out.Licence.Status)
	return out, nil
}

// ShownLicence is what a verifier without the holder's consent may see.
type ShownLicence struct {
	LicenceName   string            `json:"licence_name"`
	LicenceNumber string            `json:"licence_number"`
	HolderName    string            `json:"holder_name"`
	TypeCode      string            `json:"type_code"`
	Fields        map[string]string `json:"fields"`
}

// ShareableFields keeps the fields the type marks shareable.
func ShareableFields(typ *LicenceType, fields map[string]string) map[string]string {
	out := map[string]string{}
	for _, f := range typ.Fields {
		if v, ok := fields[f.Name]; ok && f.Shareable {
			out[f.Name] = v
		}
	}
	return out
}

func errorsIsNoConsent(err error) bool { return errors.Is(err, ErrNoLicenceConsent) }
