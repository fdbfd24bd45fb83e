package ui

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/users"
)

// A passkey as the second factor: on the code page of a sign-in whose
// password was right, a person with passkeys may use one instead of a
// code. Only the account's own passkeys are offered and accepted.
const (
	mfaPasskeyBeginPath  = mfaPath + "/passkey/begin"
	mfaPasskeyFinishPath = mfaPath + "/passkey/finish"
	// mfaPasskeyCookie names the ceremony; like the pending sign-in's
	// cookie, only the code page and its endpoints receive it.
	mfaPasskeyCookie = "sso_passkey_mfa"
)

func (p *Pages) registerPasskeySecondFactor(mux *http.ServeMux) {
	mux.HandleFunc("POST "+mfaPasskeyBeginPath, p.mfaPasskeyBegin)
	mux.HandleFunc("POST "+mfaPasskeyFinishPath, p.mfaPasskeyFinish)
}

// pendingForPasskey is the browser's pending sign-in, or nil after it has
// answered that there is none.
func (p *Pages) pendingForPasskey(w http.ResponseWriter, r *http.Request) *users.MFAChallenge {
	ch, err := p.pendingSignIn(r)
	if err != nil {
		p.passkeyFailed(w, r, "second factor challenge", err)
		return nil
	}
	if ch == nil {
		p.jsonFail(w, r, http.StatusBadRequest, "invalid_request", "mfa.expired")
		return nil
	}
	return ch
}

func (p *Pages) mfaPasskeyBegin(w http.ResponseWriter, r *http.Request) {
	var in struct{}
	if !p.readPasskeyJSON(w, r, &in) {
		return
	}
	ch := p.pendingForPasskey(w, r)
	if ch == nil {
		return
	}
	c, err := p.passkeys.BeginSecondFactor(r.Context(), ch.UserID)
	if errors.Is(err, users.ErrNoPasskeys) {
		p.jsonFail(w, r, http.StatusBadRequest, "invalid_request", "mfa.no_passkeys")
		return
	}
	if err != nil {
		p.passkeyFailed(w, r, "begin passkey second factor", err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: mfaPasskeyCookie, Value: c.Token, Path: mfaPath, Expires: c.ExpiresAt,
		MaxAge:   max(int(time.Until(c.ExpiresAt).Seconds()), 1),
		HttpOnly: true, Secure: p.secure, SameSite: http.SameSiteStrictMode,
	})
	writeJSON(w, http.StatusOK, c.Options)
}

// mfaPasskeyFinish checks the passkey and starts the session. A rejected
// passkey counts against the pending sign-in like a wrong code.
func (p *Pages) mfaPasskeyFinish(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Credential json.RawMessage `json:"credential"`
	}
	if !p.readPasskeyJSON(w, r, &in) {
		return
	}
	ch := p.pendingForPasskey(w, r)
	if ch == nil {
		return
	}
	http.SetCookie(w, &http.Cookie{Name: mfaPasskeyCookie, Path: mfaPath, MaxAge: -1, HttpOnly: true, Secure: p.secure, SameSite: http.SameSiteStrictMode})
	meta := requestMeta(r, ch.ReturnTo)
	signIn, err := p.passkeys.FinishSecondFactor(r.Context(), ch.UserID, passkeyToken(r, mfaPasskeyCookie), in.Credential, meta)
	if errors.Is(err, users.ErrPasskeyRejected) {
		n, ferr := p.mfa.Fail(r.Context(), ch.ID)
		if ferr == nil && n >= users.MaxMFAAttempts {
			p.endPendingSignIn(w, r, ch)
			p.jsonFail(w, r, http.StatusTooManyRequests, "temporarily_unavailable", "login.locked")
			return
		}
	}
	if err != nil {
		p.passkeyFailed(w, r, "passkey second factor", err)
		return
	}
	if err := p.mfa.Delete(r.Context(), ch.ID); err != nil {
		if errors.Is(err, db.ErrNotFound) { // another request finished it first
			p.jsonFail(w, r, http.StatusBadRequest, "invalid_request", "mfa.expired")
			return
		}
		p.passkeyFailed(w, r, "end second factor challenge", err)
		return
	}
	amr := slices.Clone(ch.AMR)
	for _, m := range append(signIn.AMR, "mfa") {
		if !slices.Contains(amr, m) {
			amr = append(amr, m)
		}
	}
	if err := p.startSessionAfterSecondFactor(w, r, ch, amr, max(ch.ACR, signIn.ACR), meta); err != nil {
		p.passkeyFailed(w, r, "create session", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"redirect": ch.ReturnTo})
}
