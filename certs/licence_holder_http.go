package certs

import (
	"net/http"
	"slices"
	"time"

	"github.com/govsso/sso/server"
	"github.com/govsso/sso/users"
)

// holderLicencesJSON is the answer of GET /certs/api/v1/licences.
type holderLicencesJSON struct {
	Licences []*Licence `json:"licences"`
}

// licenceQRJSON is the answer of POST /certs/api/v1/licences/{identifier}:qr.
type licenceQRJSON struct {
	QRPayload string    `json:"qr_payload"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (l *Licences) handleHolderList(w http.ResponseWriter, r *http.Request) {
	clientID, u, ok := l.authorizeHolder(w, r)
	if !ok {
		return
	}
	list, err := l.LicencesForClient(r.Context(), clientID, u, holderMeta(r, clientID))
	if err != nil {
		l.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, holderLicencesJSON{Licences: list})
}

func (l *Licences) handleHolderGet(w http.ResponseWriter, r *http.Request) {
	clientID, u, ok := l.authorizeHolder(w, r)
	if !ok {
		return
	}
	lic, err := l.LicenceForClient(r.Context(), clientID, u, r.PathValue("identifier"), holderMeta(r, clientID))
	if err != nil {
		l.failHolder(w, err)
		return
	}
	writeJSON(w, http.StatusOK, lic)
}

// handleHolderQR makes a QR payload for the holder's app; the app must be
// allowed to read the licence's type, as for reading the licence.
func (l *Licences) handleHolderQR(w http.ResponseWriter, r *http.Request, identifier string) {
	clientID, u, ok := l.authorizeHolder(w, r)
	if !ok {
		return
	}
	if _, err := l.LicenceForClient(r.Context(), clientID, u, identifier, holderMeta(r, clientID)); err != nil {
		l.failHolder(w, err)
		return
	}
	payload, exp, err := l.LicenceQR(r.Context(), u, identifier)
	if err != nil {
		l.failHolder(w, err)
		return
	}
	writeJSON(w, http.StatusOK, licenceQRJSON{QRPayload: payload, ExpiresAt: exp})
}

func (l *Licences) failHolder(w http.ResponseWriter, err error) {
	if errorsIsNoConsent(err) {
		writeProblem(w, http.StatusForbidden, "the holder has not consented to this client reading licences of this type; ask them to allow it in the account centre")
		return
	}
	l.fail(w, err)
}

// authorizeHolder answers 401 without a person's access token, 403 for a
// token without licences:read or one issued to a client itself.
func (l *Licences) authorizeHolder(w http.ResponseWriter, r *http.Request) (string, *users.User, bool) {
	if l.cfg.AuthenticatePerson == nil || l.cfg.Users == nil {
		writeProblem(w, http.StatusUnauthorized, "person authentication is not configured")
		return "", nil, false
	}
	clientID, userID, scopes, err := l.cfg.AuthenticatePerson(r)
	if err != nil || clientID == "" {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeProblem(w, http.StatusUnauthorized, "a valid access token is required")
		return "", nil, false
	}
	if !slices.Contains(scopes, ScopeLicencesRead) {
		w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="`+ScopeLicencesRead+`"`)
		writeProblem(w, http.StatusForbidden, "the access token lacks the scope "+ScopeLicencesRead)
		return "", nil, false
	}
	if sub := r.URL.Query().Get("sub"); userID == "" && sub != "" && l.cfg.ResolveSubject != nil {
		// A department's back office reads with its own token, naming
		// the holder as it knows them; the holder's consent still decides.
		id, err := l.cfg.ResolveSubject(r.Context(), clientID, sub)
		if err != nil {
			writeProblem(w, http.StatusNotFound, "sub names no person known to this client")
			return "", nil, false
		}
		userID = id
	}
	if userID != "" && l.cfg.ActingFor != nil {
		// A token issued while the person acted for an enterprise reads
		// the enterprise's licences, while the person may still act for it.
		ent, err := l.cfg.ActingFor(r)
		if err != nil {
			l.fail(w, err)
			return "", nil, false
		}
		if ent != "" {
			if _, err := l.ActingHolder(r.Context(), userID, ent); err != nil {
				writeProblem(w, http.StatusForbidden, "the person the access token was issued to may no longer act for the enterprise")
				return "", nil, false
			}
			userID = ent
		}
	}
	if userID == "" {
		writeProblem(w, http.StatusForbidden, "the access token was issued to a client, not to a licence holder; name the holder with ?sub=")
		return "", nil, false
	}
	u, err := l.cfg.Users.Get(r.Context(), userID)
	if err != nil || u.Status != users.StatusActive {
		writeProblem(w, http.StatusForbidden, "the holder's account is not active")
		return "", nil, false
	}
	return clientID, u, true
}

func holderMeta(r *http.Request, clientID string) users.RequestMeta {
	return users.RequestMeta{IP: server.ClientIP(r), UserAgent: r.UserAgent(), ClientID: clientID}
}
