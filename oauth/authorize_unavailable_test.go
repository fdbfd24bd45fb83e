package oauth

import (
	"errors"
	"fmt"
	"testing"

	"github.com/ory/fosite"

	"github.com/govsso/sso/db"
)

// TestAuthorizeErr: a database outage reaches the client as
// temporarily_unavailable, whatever fosite wrapped it in; other errors are
// left as they are.
func TestAuthorizeErr(t *testing.T) {
	down := fmt.Errorf("store code: %w", db.ErrUnavailable)
	tests := []struct {
		name string
		err  error
		want string // RFC 6749 error code
	}{
		{"database down", down, "temporarily_unavailable"},
		{"wrapped by fosite as a server error", fosite.ErrServerError.WithWrap(down), "temporarily_unavailable"},
		{"already temporarily unavailable", fosite.ErrTemporarilyUnavailable.WithWrap(down), "temporarily_unavailable"},
		{"a refusal stays a refusal", fosite.ErrAccessDenied, "access_denied"},
		{"another server error stays one", fosite.ErrServerError.WithWrap(errors.New("bug")), "server_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fosite.ErrorToRFC6749Error(authorizeErr(tt.err)).ErrorField; got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
