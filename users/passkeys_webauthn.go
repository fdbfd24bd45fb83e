package users

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
)

// PasskeyConfig names this server as a WebAuthn relying party.
type PasskeyConfig struct {
	RPID          string        // the issuer's host name, e.g. sso.example.gov.cn
	RPDisplayName string        // shown by some authenticators
	Origins       []string      // the issuer's origin, e.g. https://sso.example.gov.cn
	Timeout       time.Duration // how long a ceremony may take; default 5m
}

// Passkeys registers WebAuthn passkeys and signs people in with them,
// without a password. Every passkey is discoverable and verifies the person
// (PIN or biometrics), so one is enough to sign in.
type Passkeys struct {
	wa       *webauthn.WebAuthn
	store    *PasskeyStore
	accounts Store
	lockout  *Lockout // counts failed passkey sign-ins per client address; may be nil
	log      *audit.Log
	timeout  time.Duration
}

// NewPasskeys returns the passkey service of a relying party.
func NewPasskeys(c PasskeyConfig, store *PasskeyStore, accounts Store, lockout *Lockout, log *audit.Log) (*Passkeys, error) {
	if c.Timeout <= 0 {
		c.Timeout = DefaultPasskeyCeremonyTimeout
	}
	required := protocol.ResidentKeyRequirementRequired
	wa, err := webauthn.New(&webauthn.Config{
		RPID: c.RPID, RPDisplayName: c.RPDisplayName, RPOrigins: c.Origins,
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey: required, RequireResidentKey: protocol.ResidentKeyRequired(),
			UserVerification: protocol.VerificationRequired,
		},
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Enforce: true, Timeout: c.Timeout, TimeoutUVD: c.Timeout},
			Registration: webauthn.TimeoutConfig{Enforce: true, Timeout: c.Timeout, TimeoutUVD: c.Timeout},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("passkeys: %w", err)
	}
	return &Passkeys{wa: wa, store: store, accounts: accounts, lockout: lockout, log: log, timeout: c.Timeout}, nil
}

// passkeyUser is an account as go-webauthn sees it.
type passkeyUser struct {
	u      *User
	handle []byte
	keys   []*Passkey
}

func (p *passkeyUser) WebAuthnID() []byte          { return p.handle }
func (p *passkeyUser) WebAuthnName() string        { return p.u.Username }
func (p *passkeyUser) WebAuthnDisplayName() string { return p.u.DisplayName }

func (p *passkeyUser) WebAuthnCredentials() []webauthn.Credential {
	out := make([]webauthn.Credential, 0, len(p.keys))
	for _, k := range p.keys {
		if c, err := toCredential(k); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// loadUser is an account with its handle and passkeys.
func (s *Passkeys) loadUser(ctx context.Context, u *User) (*passkeyUser, error) {
	handle, err := s.store.UserHandle(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	keys, err := s.store.List(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	return &passkeyUser{u: u, handle: handle, keys: keys}, nil
}

// BeginRegistration starts adding a passkey to a signed-in account. The
// browser is told to make a discoverable, user-verifying credential and not
// to make a second one on an authenticator that already holds one of ours.
func (s *Passkeys) BeginRegistration(ctx context.Context, userID string) (*PasskeyChallenge, error) {
	u, err := s.accounts.Get(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("begin passkey registration: %w", err)
	}
	pu, err := s.loadUser(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("begin passkey registration: %w", err)
	}
	if len(pu.keys) >= MaxPasskeysPerUser {
		return nil, ErrTooManyPasskeys
	}
	exclude := webauthn.Credentials(pu.WebAuthnCredentials()).CredentialDescriptors()
	creation, session, err := s.wa.BeginRegistration(pu,
		webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementRequired),
		webauthn.WithExclusions(exclude))
	if err != nil {
		return nil, fmt.Errorf("begin passkey registration: %w", err)
	}
	return s.saveCeremony(ctx, ceremonyRegister, userID, creation, session)
}

// FinishRegistration checks the browser's answer to BeginRegistration and
// stores the new passkey under name. A response that does not verify is
// ErrPasskeyRejected; a finished, expired or unknown ceremony (or one begun
// by another account) is ErrPasskeyCeremony.
func (s *Passkeys) FinishRegistration(ctx context.Context, userID, token string, response []byte, name string, m RequestMeta) (*Passkey, error) {
	name, err := NormalizePasskeyName(name)
	if err != nil {
		return nil, err
	}
	c, err := s.store.takeCeremony(ctx, token, ceremonyRegister)
	if err != nil {
		return nil, err
	}
	if c.userID != userID {
		return nil, fmt.Errorf("ceremony of another account: %w", ErrPasskeyCeremony)
	}
	var session webauthn.SessionData
	if err := json.Unmarshal(c.data, &session); err != nil {
		return nil, fmt.Errorf("passkey ceremony state: %w", err)
	}
	u, err := s.accounts.Get(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("finish passkey registration: %w", err)
	}
	pu, err := s.loadUser(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("finish passkey registration: %w", err)
	}
	cred, err := s.verifyRegistration(pu, session, response)
	if err != nil {
		return nil, s.refuse(ctx, actionPasskeyRegister, userID, userID, m, "rejected", err, ErrPasskeyRejected)
	}
	p := fromCredential(cred, userID, name)
	err = s.store.d.InTx(ctx, func(ctx context.Context) error {
		n, err := s.store.Count(ctx, userID)
		if err != nil {
			return err
		}
		if n >= MaxPasskeysPerUser {
			return ErrTooManyPasskeys
		}
		if err := s.store.Add(ctx, p); err != nil {
			return err
		}
		return s.record(ctx, actionPasskeyRegister, userID, userID, m, audit.ResultSuccess, "", map[string]string{"passkey": p.ID})
	})
	if errors.Is(err, db.ErrConflict) {
		return nil, fmt.Errorf("credential already registered: %w", ErrPasskeyRejected)
	}
	if err != nil {
		return nil, fmt.Errorf("finish passkey registration: %w", err)
	}
	return p, nil
}

func (s *Passkeys) verifyRegistration(pu *passkeyUser, session webauthn.SessionData, response []byte) (*webauthn.Credential, error) {
	if len(response) > maxPasskeyResponseBytes {
		return nil, errors.New("response too large")
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		return nil, err
	}
	return s.wa.CreateCredential(pu, session, parsed)
}

// BeginLogin starts a passwordless sign-in with any of our discoverable
// passkeys. conditional asks for the browser's autofill UI (mediation
// "conditional"), which a login page starts as soon as it loads.
func (s *Passkeys) BeginLogin(ctx context.Context, conditional bool) (*PasskeyChallenge, error) {
	mediation := protocol.MediationDefault
	if conditional {
		mediation = protocol.MediationConditional
	}
	assertion, session, err := s.wa.BeginDiscoverableMediatedLogin(mediation,
		webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return nil, fmt.Errorf("begin passkey sign-in: %w", err)
	}
	return s.saveCeremony(ctx, ceremonyLogin, "", assertion, session)
}

// BeginSecondFactor starts the passkey step of a sign-in whose password
// was right: the browser is offered only the account's own passkeys. An
// account without passkeys gets ErrNoPasskeys.
func (s *Passkeys) BeginSecondFactor(ctx context.Context, userID string) (*PasskeyChallenge, error) {
	u, err := s.accounts.Get(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("begin passkey second factor: %w", err)
	}
	pu, err := s.loadUser(ctx, u)
	if err != nil {
		return nil, err
	}
	if len(pu.keys) == 0 {
		return nil, ErrNoPasskeys
	}
	assertion, session, err := s.wa.BeginLogin(pu, webauthn.WithUserVerification(protocol.VerificationPreferred))
	if err != nil {
		return nil, fmt.Errorf("begin passkey second factor: %w", err)
	}
	return s.saveCeremony(ctx, ceremonySecondFactor, userID, assertion, session)
}

// FinishSecondFactor checks the browser's answer to BeginSecondFactor for
// userID, with the errors and audit of FinishLogin; a ceremony begun for
// another account is ErrPasskeyCeremony.
func (s *Passkeys) FinishSecondFactor(ctx context.Context, userID, token string, response []byte, m RequestMeta) (*PasskeySignIn, error) {
	if until, err := s.checkIPLock(ctx, m); err != nil || !until.IsZero() {
		if err != nil {
			return nil, err
		}
		return nil, s.refuseLogin(ctx, userID, m, reasonLocked, nil, &LockedError{Until: until})
	}
	c, err := s.store.takeCeremony(ctx, token, ceremonySecondFactor)
	if err == nil && c.userID != userID {
		err = fmt.Errorf("begun for another account: %w", ErrPasskeyCeremony)
	}
	if err != nil {
		if errors.Is(err, ErrPasskeyCeremony) {
			return nil, s.refuseLogin(ctx, userID, m, "unknown_ceremony", secondFactorDetails(nil), err)
		}
		return nil, err
	}
	var session webauthn.SessionData
	if err := json.Unmarshal(c.data, &session); err != nil {
		return nil, fmt.Errorf("passkey ceremony state: %w", err)
	}
	u, err := s.accounts.Get(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("passkey second factor: %w", err)
	}
	pu, err := s.loadUser(ctx, u)
	if err != nil {
		return nil, err
	}
	cred, err := s.verifySecondFactor(pu, session, response)
	if err != nil {
		details := secondFactorDetails(map[string]string{"error": describePasskeyError(err)})
		return nil, s.refuseLogin(ctx, userID, m, "rejected", details, s.countIPFailure(ctx, m))
	}
	return s.complete(ctx, pu, cred, m, secondFactorDetails(nil))
}

// verifySecondFactor checks an assertion against the account's own passkeys.
func (s *Passkeys) verifySecondFactor(pu *passkeyUser, session webauthn.SessionData, response []byte) (*webauthn.Credential, error) {
	if len(response) > maxPasskeyResponseBytes {
		return nil, errors.New("response too large")
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return nil, err
	}
	cred, err := s.wa.ValidateLogin(pu, session, parsed)
	if err != nil {
		return nil, err
	}
	if parsed.AuthenticatorAttachment != "" {
		cred.Authenticator.Attachment = parsed.AuthenticatorAttachment
	}
	return cred, nil
}

// secondFactorDetails marks an audit record as the passkey step after a password.
func secondFactorDetails(d map[string]string) map[string]string {
	if d == nil {
		d = map[string]string{}
	}
	d["step"] = "second_factor"
	return d
}

// saveCeremony keeps a ceremony's state server-side under a fresh random
// cookie token and returns what the browser needs.
func (s *Passkeys) saveCeremony(ctx context.Context, kind, userID string, options any, session *webauthn.SessionData) (*PasskeyChallenge, error) {
	opts, err := json.Marshal(options)
	if err != nil {
		return nil, fmt.Errorf("passkey options: %w", err)
	}
	data, err := json.Marshal(session)
	if err != nil {
		return nil, fmt.Errorf("passkey ceremony state: %w", err)
	}
	token := rand.Text()
	expires := s.store.clock().Add(s.timeout) // session.Expires too, but on this node's clock
	if err := s.store.saveCeremony(ctx, token, passkeyCeremony{kind: kind, userID: userID, data: data, expiresAt: expires}); err != nil {
		return nil, err
	}
	return &PasskeyChallenge{Token: token, Options: opts, ExpiresAt: expires}, nil
}

// FinishLogin checks the browser's answer to BeginLogin. It returns the
// account and the amr and acr of the session to start, or: ErrPasskeyCeremony
// (ceremony finished, expired or unknown), ErrPasskeyRejected (the response
// does not verify, names no passkey of ours, or the passkey may have been
// cloned), ErrLocked (too many failures from this address) or
// ErrAccountDisabled. Every outcome is audited.
func (s *Passkeys) FinishLogin(ctx context.Context, token string, response []byte, m RequestMeta) (*PasskeySignIn, error) {
	if until, err := s.checkIPLock(ctx, m); err != nil || !until.IsZero() {
		if err != nil {
			return nil, err
		}
		return nil, s.refuseLogin(ctx, "", m, reasonLocked, nil, &LockedError{Until: until})
	}
	c, err := s.store.takeCeremony(ctx, token, ceremonyLogin)
	if err != nil {
		if errors.Is(err, ErrPasskeyCeremony) {
			return nil, s.refuseLogin(ctx, "", m, "unknown_ceremony", nil, err)
		}
		return nil, err
	}
	var session webauthn.SessionData
	if err := json.Unmarshal(c.data, &session); err != nil {
		return nil, fmt.Errorf("passkey ceremony state: %w", err)
	}
	pu, cred, err := s.verifyLogin(ctx, session, response)
	if err != nil {
		subject := ""
		if pu != nil {
			subject = pu.u.ID
		}
		return nil, s.refuseLogin(ctx, subject, m, "rejected", map[string]string{"error": describePasskeyError(err)}, s.countIPFailure(ctx, m))
	}
	return s.complete(ctx, pu, cred, m, nil)
}

// verifyLogin checks an assertion; the user handle it carries names the
// account, whose passkeys must include the one that signed.
func (s *Passkeys) verifyLogin(ctx context.Context, session webauthn.SessionData, response []byte) (*passkeyUser, *webauthn.Credential, error) {
	if len(response) > maxPasskeyResponseBytes {
		return nil, nil, errors.New("response too large")
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return nil, nil, err
	}
	var found *passkeyUser
	handler := func(rawID, userHandle []byte) (webauthn.User, error) {
		userID, err := s.store.UserIDByHandle(ctx, userHandle)
		if err != nil {
			return nil, err
		}
		u, err := s.accounts.Get(ctx, userID)
		if err != nil {
			return nil, err
		}
		if found, err = s.loadUser(ctx, u); err != nil {
			return nil, err
		}
		return found, nil
	}
	_, cred, err := s.wa.ValidatePasskeyLogin(handler, session, parsed)
	if err != nil {
		return found, nil, err
	}
	if parsed.AuthenticatorAttachment != "" {
		cred.Authenticator.Attachment = parsed.AuthenticatorAttachment
	}
	return found, cred, nil
}

// complete applies the policy after a valid assertion and writes back what
// the sign-in learned about the passkey; extra goes into the audit record.
func (s *Passkeys) complete(ctx context.Context, pu *passkeyUser, cred *webauthn.Credential, m RequestMeta, extra map[string]string) (*PasskeySignIn, error) {
	id := base64.RawURLEncoding.EncodeToString(cred.ID)
	var p *Passkey
	for _, k := range pu.keys {
		if k.ID == id {
			p = k
		}
	}
	if p == nil {
		return nil, fmt.Errorf("passkey %s vanished during sign-in: %w", id, ErrPasskeyRejected)
	}
	p.SignCount, p.CloneWarning = cred.Authenticator.SignCount, cred.Authenticator.CloneWarning
	p.UserVerified, p.BackupState = cred.Flags.UserVerified, cred.Flags.BackupState
	p.LastUsedAt = s.store.clock()
	details := map[string]string{"method": "passkey", "passkey": p.ID}
	for k, v := range extra {
		details[k] = v
	}
	if err := s.store.RecordUse(ctx, p); err != nil {
		return nil, fmt.Errorf("passkey sign-in: %w", err)
	}
	switch {
	case p.CloneWarning:
		// The counter went backwards: two copies of the key exist. Refuse
		// it from now on; the person can remove it and add a new one.
		return nil, s.refuseLogin(ctx, pu.u.ID, m, "clone_warning", details, ErrPasskeyRejected)
	case pu.u.Status != StatusActive:
		return nil, s.refuseLogin(ctx, pu.u.ID, m, reasonDisabled, details, ErrAccountDisabled)
	}
	attachment := string(cred.Authenticator.Attachment)
	if attachment == "" {
		attachment = p.Attachment
	}
	in := &PasskeySignIn{User: pu.u, Passkey: p, AMR: passkeyAMR(attachment, cred.Flags.UserVerified), ACR: passkeyACR(pu.u.AssuranceLevel)}
	if err := s.recordLogin(ctx, pu.u.ID, m, audit.ResultSuccess, "", details); err != nil {
		return nil, err
	}
	return in, nil
}

// List returns an account's passkeys, oldest first.
func (s *Passkeys) List(ctx context.Context, userID string) ([]*Passkey, error) {
	return s.store.List(ctx, userID)
}

// Rename names one of the account's passkeys.
func (s *Passkeys) Rename(ctx context.Context, userID, id, name string, m RequestMeta) error {
	name, err := NormalizePasskeyName(name)
	if err != nil {
		return err
	}
	return s.store.d.InTx(ctx, func(ctx context.Context) error {
		if err := s.store.Rename(ctx, userID, id, name); err != nil {
			return err
		}
		return s.record(ctx, actionPasskeyRename, userID, userID, m, audit.ResultSuccess, "", map[string]string{"passkey": id})
	})
}

// Delete removes one of the account's passkeys.
func (s *Passkeys) Delete(ctx context.Context, userID, id string, m RequestMeta) error {
	return s.store.d.InTx(ctx, func(ctx context.Context) error {
		if err := s.store.Delete(ctx, userID, id); err != nil {
			return err
		}
		return s.record(ctx, actionPasskeyDelete, userID, userID, m, audit.ResultSuccess, "", map[string]string{"passkey": id})
	})
}

// checkIPLock is the lockout of the client address, if there is a lockout.
func (s *Passkeys) checkIPLock(ctx context.Context, m RequestMeta) (time.Time, error) {
	if s.lockout == nil || m.IP == "" {
		return time.Time{}, nil
	}
	until, err := s.lockout.Check(ctx, IPKey(m.IP))
	if err != nil {
		return time.Time{}, fmt.Errorf("passkey sign-in: %w", err)
	}
	return until, nil
}

// countIPFailure counts a rejected assertion against the client address
// only: anyone can send an assertion naming a victim's user handle, and
// that must not lock the victim out.
func (s *Passkeys) countIPFailure(ctx context.Context, m RequestMeta) error {
	if s.lockout == nil || m.IP == "" {
		return ErrPasskeyRejected
	}
	until, err := s.lockout.Fail(ctx, IPKey(m.IP))
	if err != nil {
		return fmt.Errorf("passkey sign-in: %w", err)
	}
	if !until.IsZero() {
		return fmt.Errorf("%w: %w", ErrPasskeyRejected, &LockedError{Until: until})
	}
	return ErrPasskeyRejected
}

// describePasskeyError is the library's reason for refusing a response,
// for the audit log (it never holds key material).
func describePasskeyError(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		if pe.DevInfo != "" {
			return pe.Type + ": " + pe.Details + " (" + pe.DevInfo + ")"
		}
		return pe.Type + ": " + pe.Details
	}
	return err.Error()
}

// refuseLogin audits a refused passkey sign-in and returns answer.
func (s *Passkeys) refuseLogin(ctx context.Context, subject string, m RequestMeta, reason string, details map[string]string, answer error) error {
	if details == nil {
		details = map[string]string{}
	}
	details["method"] = "passkey"
	if err := s.recordLogin(ctx, subject, m, audit.ResultFailure, reason, details); err != nil {
		return err
	}
	return answer
}

// refuse audits a refused passkey change and returns answer; cause goes to
// the audit log only.
func (s *Passkeys) refuse(ctx context.Context, action, actor, subject string, m RequestMeta, reason string, cause, answer error) error {
	if err := s.record(ctx, action, actor, subject, m, audit.ResultFailure, reason, map[string]string{"error": describePasskeyError(cause)}); err != nil {
		return err
	}
	return answer
}

// recordLogin appends an auth.login event; only a success has an actor.
func (s *Passkeys) recordLogin(ctx context.Context, subject string, m RequestMeta, result, reason string, details map[string]string) error {
	actor := ""
	if result == audit.ResultSuccess {
		actor = subject
	}
	return s.record(ctx, audit.ActionLogin, actor, subject, m, result, reason, details)
}

func (s *Passkeys) record(ctx context.Context, action, actor, subject string, m RequestMeta, result, reason string, details map[string]string) error {
	_, err := s.log.Append(ctx, audit.Event{
		Actor: actor, Subject: subject, ClientID: m.ClientID, IP: m.IP, UserAgent: m.UserAgent,
		Action: action, Result: result, Reason: reason, Details: details,
	})
	if err != nil {
		return fmt.Errorf("passkeys: %w", err)
	}
	return nil
}

// toCredential is a stored passkey as go-webauthn verifies it.
func toCredential(p *Passkey) (webauthn.Credential, error) {
	id, err := base64.RawURLEncoding.DecodeString(p.ID)
	if err != nil {
		return webauthn.Credential{}, fmt.Errorf("passkey id: %w", err)
	}
	var flags protocol.AuthenticatorFlags
	for _, f := range []struct {
		on  bool
		bit protocol.AuthenticatorFlags
	}{{p.UserPresent, protocol.FlagUserPresent}, {p.UserVerified, protocol.FlagUserVerified},
		{p.BackupEligible, protocol.FlagBackupEligible}, {p.BackupState, protocol.FlagBackupState}} {
		if f.on {
			flags |= f.bit
		}
	}
	transports := make([]protocol.AuthenticatorTransport, len(p.Transports))
	for i, t := range p.Transports {
		transports[i] = protocol.AuthenticatorTransport(t)
	}
	return webauthn.Credential{
		ID: id, PublicKey: p.PublicKey, AttestationType: p.AttestationType, AttestationFormat: p.AttestationFormat,
		Transport: transports, Flags: webauthn.NewCredentialFlags(flags),
		Authenticator: webauthn.Authenticator{AAGUID: p.AAGUID, SignCount: p.SignCount, CloneWarning: p.CloneWarning,
			Attachment: protocol.AuthenticatorAttachment(p.Attachment)},
	}, nil
}

// fromCredential is a newly registered credential as we store it.
func fromCredential(c *webauthn.Credential, userID, name string) *Passkey {
	transports := make([]string, len(c.Transport))
	for i, t := range c.Transport {
		transports[i] = string(t)
	}
	return &Passkey{
		ID: base64.RawURLEncoding.EncodeToString(c.ID), UserID: userID, Name: name,
		PublicKey: bytes.Clone(c.PublicKey), AttestationType: c.AttestationType, AttestationFormat: c.AttestationFormat,
		Transports: transports, Attachment: string(c.Authenticator.Attachment),
		UserPresent: c.Flags.UserPresent, UserVerified: c.Flags.UserVerified,
		BackupEligible: c.Flags.BackupEligible, BackupState: c.Flags.BackupState,
		AAGUID: bytes.Clone(c.Authenticator.AAGUID), SignCount: c.Authenticator.SignCount, CloneWarning: c.Authenticator.CloneWarning,
	}
}
