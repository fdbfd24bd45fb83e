package certs

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/emmansun/gmsm/sm3"
	"github.com/google/uuid"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/kek"
	"github.com/govsso/sso/users"
)

// ScopeSignRequest lets a department client ask people for signatures.
const ScopeSignRequest = "sign:request"

// Limits and defaults of signature requests.
const (
	// DefaultSignRequestTTL is how long a person has to answer.
	DefaultSignRequestTTL = 10 * time.Minute
	// MaxSignRequestTTL bounds expires_in.
	MaxSignRequestTTL = 24 * time.Hour
	// MaxSignTitle is the longest title, in characters.
	MaxSignTitle = 200
	// MaxSignDocument is the largest document sent whole (decoded bytes);
	// larger ones are sent as their SM3 digest.
	MaxSignDocument = 4 << 20
	// StepUpWindow is how recent a sign-in must be for its session to
	// approve a signature when no second factor was used after the request.
	StepUpWindow = 5 * time.Minute
	// SignLevel is the assurance level a signer needs.
	SignLevel = 2
)

// SignRequestStatus is where a signature request stands.
type SignRequestStatus string

// The statuses of a signature request.
const (
	SignPending  SignRequestStatus = "pending"
	SignSigned   SignRequestStatus = "signed"
	SignDeclined SignRequestStatus = "declined"
	SignExpired  SignRequestStatus = "expired"
)

// Errors of signature requests, checked with errors.Is.
var (
	// ErrSignSettled means the request was already signed, declined or expired.
	ErrSignSettled = errors.New("certs: the signature request is no longer pending")
	// ErrStepUpRequired means the person must authenticate again before signing.
	ErrStepUpRequired = errors.New("certs: signing needs a recent sign-in or second factor")
	// ErrSignLevel means the person is below assurance level 2.
	ErrSignLevel = errors.New("certs: signing needs identity verified to level 2")
)

// SignRequest is one request for a person's signature.
type SignRequest struct {
	ID       string
	ClientID string
	UserID   string
	Subject  string // the sub the client named the person by
	Title    string
	Digest   []byte // SM3 of the document
	// DigestOnly says the client sent only the digest: the raw signature
	// then signs the 32 digest bytes as its message.
	DigestOnly    bool
	CallbackURL   string
	Status        SignRequestStatus
	CertificateID string
	CMS           []byte // detached SignedData, once signed
	Signature     []byte // raw SM2 DER, once signed
	CreatedAt     time.Time
	ExpiresAt     time.Time
	DecidedAt     *time.Time

	document []byte // the document while pending; nil when only the digest came
}

// SignAuth is how the person's browser session authenticated.
type SignAuth struct {
	AuthTime time.Time
	AMR      []string
}

// strongMethods are the RFC 8176 methods that count as a step-up.
var strongMethods = []string{"otp", "hwk", "swk", "mfa"}

// Fresh says whether a session may approve a request created at created:
// signed in within StepUpWindow of now, or with a second factor or passkey
// at or after the request was made.
func (a SignAuth) Fresh(created, now time.Time) bool {
	if !a.AuthTime.IsZero() && now.Sub(a.AuthTime) <= StepUpWindow && !a.AuthTime.After(now.Add(time.Minute)) {
		return true
	}
	strong := slices.ContainsFunc(a.AMR, func(m string) bool { return slices.Contains(strongMethods, m) })
	return strong && !a.AuthTime.Before(created.Truncate(time.Second))
}

// SignRequestConfig is what signature requests need besides the CA.
type SignRequestConfig struct {
	// Authenticate says which client calls and with which scopes; cmd/sso
	// reads a Bearer access token.
	Authenticate func(r *http.Request) (clientID string, scopes []string, err error)
	// ResolveSubject maps the sub a client knows a person by (public or
	// pairwise) to the account id; db.ErrNotFound when it names nobody.
	ResolveSubject func(ctx context.Context, clientID, sub string) (string, error)
	// Users reads accounts.
	Users interface {
		Get(ctx context.Context, id string) (*users.User, error)
	}
	// SignJWT signs a notification for a client with the server's keys.
	SignJWT func(ctx context.Context, audience string, claims map[string]any) (string, error)
	// AllowHTTPLocalhost accepts http://localhost callbacks (development).
	AllowHTTPLocalhost bool
	// HTTPClient sends callbacks; nil means one with a 5 s timeout that
	// follows no redirects.
	HTTPClient *http.Client
	// AuthenticatePerson reads a person's access token: the client it was
	// issued to, the account ("" for a client's own token) and the scopes.
	// POST /certs/api/v1/certificates needs it.
	AuthenticatePerson func(r *http.Request) (clientID, userID string, scopes []string, err error)
}

// SignRequests keeps signature requests and signs them with the person's consent.
type SignRequests struct {
	ca           *Service
	store        *signStore
	cfg          SignRequestConfig
	pseudonymKey []byte
}

// NewSignRequests builds the signature request service on the CA service.
func NewSignRequests(ca *Service, k *kek.KEK, cfg SignRequestConfig) *SignRequests {
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: callbackTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	return &SignRequests{ca: ca, store: &signStore{db: ca.store.db}, cfg: cfg,
		pseudonymKey: k.Derive("sso certs user pseudonym")}
}

// CreateSignRequest is the body of POST /certs/api/v1/sign-requests.
type CreateSignRequest struct {
	SM3DigestHex *string `json:"sm3_digest_hex"`
	DataBase64   *string `json:"data_base64"`
	Title        string  `json:"title"`
	Sub          string  `json:"sub"`
	CallbackURL  string  `json:"callback_url"`
	ExpiresIn    int     `json:"expires_in"` // seconds; 0 means DefaultSignRequestTTL
}

// Create checks and stores a request from clientID; every refusal matches
// ErrInvalid and names the field.
func (s *SignRequests) Create(ctx context.Context, clientID string, in CreateSignRequest) (*SignRequest, error) {
	digest, doc, err := signContent(in)
	if err != nil {
		return nil, err
	}
	title := strings.TrimSpace(in.Title)
	if err := checkTitle(title); err != nil {
		return nil, err
	}
	if err := s.checkCallback(in.CallbackURL); err != nil {
		return nil, err
	}
	ttl := DefaultSignRequestTTL
	if in.ExpiresIn < 0 || time.Duration(in.ExpiresIn)*time.Second > MaxSignRequestTTL {
		return nil, wrapInvalid("expires_in must be between 1 and %d seconds", int(MaxSignRequestTTL.Seconds()))
	} else if in.ExpiresIn > 0 {
		ttl = time.Duration(in.ExpiresIn) * time.Second
	}
	sub := strings.TrimSpace(in.Sub)
	if sub == "" || len(sub) > 255 {
		return nil, wrapInvalid("sub is required (at most 255 characters)")
	}
	userID, err := s.cfg.ResolveSubject(ctx, clientID, sub)
	if errors.Is(err, db.ErrNotFound) {
		return nil, wrapInvalid("sub does not name a person known to this client")
	}
	if err != nil {
		return nil, err
	}
	u, err := s.cfg.Users.Get(ctx, userID)
	if errors.Is(err, db.ErrNotFound) || (err == nil && u.Status != users.StatusActive) {
		return nil, wrapInvalid("sub does not name an active person")
	}
	if err != nil {
		return nil, err
	}
	now := s.ca.now().Truncate(time.Microsecond)
	r := &SignRequest{ID: uuid.Must(uuid.NewV7()).String(), ClientID: clientID, UserID: userID, Subject: sub, Title: title,
		Digest: digest, DigestOnly: doc == nil, document: doc, CallbackURL: in.CallbackURL, Status: SignPending, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	err = s.store.db.InTx(ctx, func(ctx context.Context) error {
		if err := s.store.insert(ctx, r); err != nil {
			return err
		}
		return s.audit(ctx, "client:"+clientID, clientID, "certs.sign_request.create", r, nil)
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

func signContent(in CreateSignRequest) (digest, doc []byte, err error) {
	switch {
	case in.DataBase64 != nil && in.SM3DigestHex != nil:
		return nil, nil, wrapInvalid("send either data_base64 or sm3_digest_hex, not both")
	case in.DataBase64 != nil:
		if base64.StdEncoding.DecodedLen(len(*in.DataBase64)) > MaxSignDocument+3 {
			return nil, nil, wrapInvalid("data_base64 exceeds %d bytes; send sm3_digest_hex instead", MaxSignDocument)
		}
		doc, err := base64.StdEncoding.DecodeString(*in.DataBase64)
		if err != nil {
			return nil, nil, wrapInvalid("data_base64 is not standard base64: %v", err)
		}
		if len(doc) > MaxSignDocument {
			return nil, nil, wrapInvalid("data_base64 exceeds %d bytes; send sm3_digest_hex instead", MaxSignDocument)
		}
		sum := sm3.Sum(doc)
		return sum[:], doc, nil
	case in.SM3DigestHex != nil:
		b, err := hex.DecodeString(*in.SM3DigestHex)
		if err != nil || len(b) != sm3.Size {
			return nil, nil, wrapInvalid("sm3_digest_hex must be %d hexadecimal digits", 2*sm3.Size)
		}
		return b, nil, nil
	}
	return nil, nil, wrapInvalid("data_base64 or sm3_digest_hex is required")
}

func checkTitle(title string) error {
	switch {
	case title == "":
		return wrapInvalid("title is required: the person sees it when asked to sign")
	case !utf8.ValidString(title):
		return wrapInvalid("title is not valid UTF-8")
	case utf8.RuneCountInString(title) > MaxSignTitle:
		return wrapInvalid("title exceeds %d characters", MaxSignTitle)
	case strings.ContainsFunc(title, unicode.IsControl):
		return wrapInvalid("title must not contain control characters")
	}
	return nil
}

// checkCallback accepts https URLs, and http to a loopback host when
// AllowHTTPLocalhost is set.
func (s *SignRequests) checkCallback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || raw == "" || len(raw) > 2048 || u.Host == "" || u.User != nil || u.Fragment != "" {
		return wrapInvalid("callback_url must be an absolute https URL without user info or fragment")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		ip := net.ParseIP(host)
		if s.cfg.AllowHTTPLocalhost && (host == "localhost" || (ip != nil && ip.IsLoopback())) {
			return nil
		}
	}
	return wrapInvalid("callback_url must use https")
}

// ForClient returns a request as the client that made it sees it, settling
// it as expired first when its time ran out; another client's request is
// db.ErrNotFound.
func (s *SignRequests) ForClient(ctx context.Context, clientID, id string) (*SignRequest, error) {
	r, err := s.store.byID(ctx, id)
	if err != nil {
		return nil, err
	}
	if r.ClientID != clientID {
		return nil, db.ErrNotFound
	}
	return s.expireIfDue(ctx, r)
}

// ForUser returns a request addressed to userID (db.ErrNotFound otherwise),
// settling it as expired when its time ran out.
func (s *SignRequests) ForUser(ctx context.Context, userID, id string) (*SignRequest, error) {
	r, err := s.store.byID(ctx, id)
	if err != nil {
		return nil, err
	}
	if r.UserID != userID {
		return nil, db.ErrNotFound
	}
	return s.expireIfDue(ctx, r)
}

// Pending lists the requests waiting for userID, newest first.
func (s *SignRequests) Pending(ctx context.Context, userID string) ([]*SignRequest, error) {
	return s.store.pendingForUser(ctx, userID, s.ca.now())
}

func (s *SignRequests) expireIfDue(ctx context.Context, r *SignRequest) (*SignRequest, error) {
	if r.Status != SignPending || s.ca.now().Before(r.ExpiresAt) {
		return r, nil
	}
	if err := s.expire(ctx, r.ID); err != nil && !errors.Is(err, ErrSignSettled) {
		return nil, err
	}
	return s.store.byID(ctx, r.ID)
}

// Approve signs the request with the person's user certificate, issuing
// one (key held by the server, sealed) when they have none usable. The
// person must be at level 2 and have authenticated recently (see
// SignAuth.Fresh). The signature, its audit record, the request's new
// status and the callback are one transaction.
func (s *SignRequests) Approve(ctx context.Context, userID, id string, auth SignAuth, m users.RequestMeta) (*SignRequest, error) {
	if _, err := s.ForUser(ctx, userID, id); err != nil {
		return nil, err
	}
	var out *SignRequest
	err := s.store.db.InTx(ctx, func(ctx context.Context) error {
		r, err := s.lockPending(ctx, userID, id)
		if err != nil {
			return err
		}
		now := s.ca.now()
		if !auth.Fresh(r.CreatedAt, now) {
			return ErrStepUpRequired
		}
		u, err := s.cfg.Users.Get(ctx, userID)
		if err != nil {
			return err
		}
		if u.Status != users.StatusActive {
			return db.ErrNotFound
		}
		if u.AssuranceLevel < SignLevel {
			return ErrSignLevel
		}
		certID, err := s.userCertificate(ctx, u)
		if err != nil {
			return err
		}
		if !r.DigestOnly {
			r.Signature, err = s.ca.Sign(ctx, certID, r.document)
			if err == nil {
				r.CMS, err = s.ca.SignCMS(ctx, certID, r.document)
			}
		} else {
			r.Signature, err = s.ca.Sign(ctx, certID, r.Digest)
			if err == nil {
				r.CMS, err = s.ca.SignCMSDigest(ctx, certID, r.Digest)
			}
		}
		if err != nil {
			return err
		}
		r.Status, r.CertificateID, r.DecidedAt, r.document = SignSigned, certID, &now, nil
		if err := s.settle(ctx, r, userID, "certs.sign_request.approve", m); err != nil {
			return err
		}
		out = r
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Decline refuses the request; no step-up is needed to say no.
func (s *SignRequests) Decline(ctx context.Context, userID, id string, m users.RequestMeta) (*SignRequest, error) {
	if _, err := s.ForUser(ctx, userID, id); err != nil {
		return nil, err
	}
	var out *SignRequest
	err := s.store.db.InTx(ctx, func(ctx context.Context) error {
		r, err := s.lockPending(ctx, userID, id)
		if err != nil {
			return err
		}
		now := s.ca.now()
		r.Status, r.DecidedAt, r.document = SignDeclined, &now, nil
		if err := s.settle(ctx, r, userID, "certs.sign_request.decline", m); err != nil {
			return err
		}
		out = r
		return nil
	})
	return out, err
}

// lockPending loads the person's request for update; it must be pending
// and not yet expired.
func (s *SignRequests) lockPending(ctx context.Context, userID, id string) (*SignRequest, error) {
	r, err := s.store.byIDForUpdate(ctx, id)
	if err != nil {
		return nil, err
	}
	if r.UserID != userID {
		return nil, db.ErrNotFound
	}
	if r.Status != SignPending || !s.ca.now().Before(r.ExpiresAt) {
		return nil, ErrSignSettled
	}
	return r, nil
}

// ExpireDue settles as expired the pending requests whose time ran out,
// up to limit, and returns how many it settled.
func (s *SignRequests) ExpireDue(ctx context.Context, limit int) (int, error) {
	due, err := s.store.due(ctx, s.ca.now(), limit)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range due {
		switch err := s.expire(ctx, r.ID); {
		case err == nil:
			n++
		case errors.Is(err, ErrSignSettled):
		default:
			return n, err
		}
	}
	return n, nil
}

func (s *SignRequests) expire(ctx context.Context, id string) error {
	return s.store.db.InTx(ctx, func(ctx context.Context) error {
		r, err := s.store.byIDForUpdate(ctx, id)
		if err != nil {
			return err
		}
		now := s.ca.now()
		if r.Status != SignPending || now.Before(r.ExpiresAt) {
			return ErrSignSettled
		}
		r.Status, r.DecidedAt, r.document = SignExpired, &now, nil
		return s.settle(ctx, r, "system", "certs.sign_request.expire", users.RequestMeta{})
	})
}

// settle stores the outcome, audits it and queues the callback, in the
// caller's transaction.
func (s *SignRequests) settle(ctx context.Context, r *SignRequest, actor, action string, m users.RequestMeta) error {
	if err := s.store.settle(ctx, r); errors.Is(err, db.ErrNotFound) {
		return ErrSignSettled
	} else if err != nil {
		return err
	}
	if err := s.audit(ctx, actor, r.ClientID, action, r, &m); err != nil {
		return err
	}
	return s.store.enqueueCallback(ctx, r, s.ca.now())
}

func (s *SignRequests) audit(ctx context.Context, actor, clientID, action string, r *SignRequest, m *users.RequestMeta) error {
	if s.ca.cfg.Audit == nil {
		return nil
	}
	e := audit.Event{Actor: actor, Subject: r.UserID, ClientID: clientID, Action: action, Result: audit.ResultSuccess,
		Details: map[string]string{"sign_request_id": r.ID, "sm3_digest": hex.EncodeToString(r.Digest), "status": string(r.Status)}}
	if r.CertificateID != "" {
		e.Details["certificate_id"] = r.CertificateID
	}
	if m != nil {
		e.IP, e.UserAgent = m.IP, m.UserAgent
	}
	_, err := s.ca.cfg.Audit.Append(ctx, e)
	return err
}

// userCertificate returns the person's usable server-held signing
// certificate, issuing one when there is none: subject CN the verified
// name, serialNumber a pseudonym derived from the account id (never the
// ID number).
func (s *SignRequests) userCertificate(ctx context.Context, u *users.User) (string, error) {
	id, err := s.store.userSigningCertificate(ctx, u.ID, s.ca.now())
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, db.ErrNotFound) {
		return "", err
	}
	name := u.DisplayName
	if name == "" {
		name = u.Username
	}
	c, err := s.ca.Issue(ctx, IssueRequest{Subject: pkix.Name{CommonName: name, SerialNumber: s.pseudonym(u.ID)},
		Kind: KindUser, OwnerUserID: u.ID})
	if err != nil {
		return "", fmt.Errorf("certs: user certificate: %w", err)
	}
	return c.ID, nil
}

// pseudonym is a stable serialNumber for a person: "P" and 20 hex digits
// of an HMAC of the account id, so certificates name no ID number and
// cannot be linked to the account by anyone without the key.
func (s *SignRequests) pseudonym(userID string) string {
	m := hmac.New(sha256.New, s.pseudonymKey)
	m.Write([]byte(userID))
	return "P" + strings.ToUpper(hex.EncodeToString(m.Sum(nil)[:10]))
}

// Certificate returns the signer's certificate of a signed request.
func (s *SignRequests) Certificate(ctx context.Context, r *SignRequest) (*Certificate, error) {
	return s.ca.Get(ctx, r.CertificateID)
}

// Callbacks reports the outbox entries of a request, oldest first.
func (s *SignRequests) Callbacks(ctx context.Context, requestID string) ([]SignCallbackStatus, error) {
	return s.store.callbacksOf(ctx, requestID)
}
