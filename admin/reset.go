package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/server"
	"github.com/govsso/sso/users"
)

// CodeSender sends one-time codes and texts under the send limits
// (users.OTP).
type CodeSender interface {
	Issue(ctx context.Context, purpose users.OTPPurpose, destination string) error
	Notify(ctx context.Context, destination, text string) error
}

// Audit actions of password resets started by an administrator. The
// records name the method and the masked destination, never a token or a
// code.
const actionUserPasswordResetStart = "user.password_reset_start"

// How an administrator's password reset reaches the person.
const (
	// resetByLink answers with a one-time link for the administrator to
	// hand over (at a service-centre desk, say).
	resetByLink = "link"
	// resetBySMS sends a reset code to the account's phone number; the
	// person enters it on the reset page.
	resetBySMS = "sms"
	// resetByEmail mails the one-time link to the account's address; the
	// answer does not carry it.
	resetByEmail = "email"
)

// passwordResetRequest is the body of POST /users/{id}/password-reset; an
// empty body means a link.
type passwordResetRequest struct {
	Method string `json:"method"`
}

// passwordResetResponse never carries a password; ResetURL holds the
// link's token and is only in the answer of the "link" method.
type passwordResetResponse struct {
	Method    string    `json:"method"`
	ResetURL  string    `json:"reset_url,omitempty"`
	SentTo    string    `json:"sent_to,omitempty"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

var errNoResetLinks = problem(http.StatusServiceUnavailable, "unavailable", "Password reset method off", "the server is not configured for this reset method")

// startPasswordReset lets an administrator start a reset for a person who
// cannot: the new password is always chosen by the person.
func (api *API) startPasswordReset(w http.ResponseWriter, r *http.Request, a Actor) {
	var in passwordResetRequest
	if r.ContentLength != 0 {
		if err := decode(w, r, &in); err != nil {
			api.writeError(w, r, err)
			return
		}
	}
	if in.Method == "" {
		in.Method = resetByLink
	}
	if in.Method != resetByLink && in.Method != resetBySMS && in.Method != resetByEmail {
		writeProblem(w, validationProblem([]FieldError{{Field: "method", Reason: "must be link, sms or email"}}))
		return
	}
	u, ok := api.loadUser(w, r, a, ActionUserResetPassword)
	if !ok {
		return
	}
	if u.Status == users.StatusDeleted {
		api.writeError(w, r, users.ErrDeleted)
		return
	}
	switch in.Method {
	case resetBySMS:
		api.resetBySMS(w, r, a, u)
	default:
		api.resetByLink(w, r, a, u, in.Method)
	}
}

// resetBySMS sends a reset code; the person uses the ordinary reset page.
func (api *API) resetBySMS(w http.ResponseWriter, r *http.Request, a Actor, u *users.User) {
	if u.Phone == "" {
		writeProblem(w, validationProblem([]FieldError{{Field: "method", Reason: "the account has no phone number"}}))
		return
	}
	if api.Codes == nil {
		writeProblem(w, errNoResetLinks)
		return
	}
	ctx := users.WithRequestMeta(r.Context(), api.requestMeta(r, a))
	if err := api.Codes.Issue(ctx, users.PurposeReset, u.Phone); err != nil {
		api.writeError(w, r, err)
		return
	}
	sentTo := users.MaskPhone(u.Phone)
	err := api.DB.InTx(ctx, func(ctx context.Context) error {
		return api.record(ctx, r, a, actionUserPasswordResetStart, u.ID, map[string]string{"method": resetBySMS, "destination": sentTo})
	})
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, passwordResetResponse{Method: resetBySMS, SentTo: sentTo})
}

// resetByLink makes a one-time link and either answers with it or mails it.
func (api *API) resetByLink(w http.ResponseWriter, r *http.Request, a Actor, u *users.User, method string) {
	if api.ResetLinks == nil || api.ResetURL == "" {
		writeProblem(w, errNoResetLinks)
		return
	}
	if method == resetByEmail && u.Email == "" {
		writeProblem(w, validationProblem([]FieldError{{Field: "method", Reason: "the account has no email address"}}))
		return
	}
	if method == resetByEmail && api.Codes == nil {
		writeProblem(w, errNoResetLinks)
		return
	}
	ctx := r.Context()
	out := passwordResetResponse{Method: method}
	var link string
	err := api.DB.InTx(ctx, func(ctx context.Context) error {
		token, expires, err := api.ResetLinks.Create(ctx, u.ID, a.Name())
		if err != nil {
			return err
		}
		link = api.ResetURL + "?" + url.Values{"token": {token}}.Encode()
		out.ExpiresAt = expires
		details := map[string]string{"method": method, "expires_at": expires.Format(time.RFC3339)}
		if method == resetByEmail {
			out.SentTo = maskEmail(u.Email)
			details["destination"] = out.SentTo
		}
		return api.record(ctx, r, a, actionUserPasswordResetStart, u.ID, details)
	})
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	if method == resetByEmail {
		mctx := users.WithRequestMeta(ctx, api.requestMeta(r, a))
		if err := api.Codes.Notify(mctx, u.Email, resetLinkText(link, api.resetLinkTTL())); err != nil {
			// A link nobody received must not stay usable, and the log
			// says the start failed.
			rerr := api.DB.InTx(context.WithoutCancel(ctx), func(ctx context.Context) error {
				if err := api.ResetLinks.RevokeForUser(ctx, u.ID); err != nil {
					return err
				}
				_, err := api.Audit.Append(ctx, audit.Event{Actor: a.Name(), Subject: u.ID, ClientID: a.ClientID, IP: server.ClientIP(r),
					UserAgent: r.UserAgent(), Action: actionUserPasswordResetStart, Result: audit.ResultFailure, Reason: "delivery_failed",
					Details: map[string]string{"method": method, "destination": out.SentTo}})
				return err
			})
			if rerr != nil {
				err = errors.Join(err, rerr)
			}
			api.writeError(w, r, err)
			return
		}
	} else {
		out.ResetURL = link
	}
	writeJSON(w, http.StatusOK, out)
}

// resetLinkTTL is how long the links the API makes work.
func (api *API) resetLinkTTL() time.Duration {
	if api.ResetLinks == nil {
		return 0
	}
	return api.ResetLinks.TTL()
}

// resetLinkText is the mail that carries a link, in Chinese and English.
func resetLinkText(link string, ttl time.Duration) string {
	mins := int(ttl / time.Minute)
	return fmt.Sprintf("【统一身份认证】管理员为你创建了重置密码链接，%d 分钟内有效，仅可使用一次：%s 如非本人申请，请忽略并联系管理员。"+
		"An administrator created a password reset link for you, valid for %d minutes and usable once: %s If you did not ask for it, ignore it and tell your administrator.",
		mins, link, mins, link)
}

// maskEmail keeps the first character of the local part and the domain.
func maskEmail(s string) string {
	local, domain, ok := strings.Cut(s, "@")
	if !ok || local == "" {
		return "***"
	}
	return local[:1] + "***@" + domain
}

// requestMeta is where the request came from, for the audit records the
// one-time code service writes.
func (api *API) requestMeta(r *http.Request, a Actor) users.RequestMeta {
	return users.RequestMeta{ClientID: a.ClientID, IP: server.ClientIP(r), UserAgent: r.UserAgent()}
}
