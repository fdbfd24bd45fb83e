package oauth

import (
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"
)

// Session is what fosite stores with every code and token: the ID token
// claims, and what userinfo and introspection need to know about the person
// and the browser session the grant came from.
type Session struct {
	*openid.DefaultSession `json:"oidc"`

	// BrowserSessionID is the sid of the single sign-on session, so that
	// logout can find every grant made from it.
	BrowserSessionID string `json:"sid,omitempty"`
	// ACR is the assurance level the person had reached at sign-in.
	ACR int `json:"acr,omitempty"`
	// AMR lists how the person authenticated (pwd, otp, hwk, …).
	AMR []string `json:"amr,omitempty"`
	// ClientID is the client the grant belongs to.
	ClientID string `json:"client_id,omitempty"`
	// ActingFor is the enterprise account the person acted for, if any.
	ActingFor string `json:"acting_for,omitempty"`
	// RefreshScopes, set only while a refresh that asked for fewer scopes
	// is stored, are the grant's full scopes: the new refresh token keeps
	// them (RFC 6749 section 6), only the new access token is narrowed.
	RefreshScopes []string `json:"-"`
}

var _ openid.Session = (*Session)(nil)

// newSession returns an empty session of the shape fosite fills from storage.
func newSession() *Session {
	return &Session{DefaultSession: &openid.DefaultSession{
		Claims:    &jwt.IDTokenClaims{},
		Headers:   &jwt.Headers{},
		ExpiresAt: map[fosite.TokenType]time.Time{},
	}}
}

// Clone copies the session; fosite clones before it sanitizes requests.
func (s *Session) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	c := *s
	if s.DefaultSession != nil {
		c.DefaultSession = s.DefaultSession.Clone().(*openid.DefaultSession)
	}
	c.AMR = append([]string(nil), s.AMR...)
	return &c
}
