package ui

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/users"
)

// OneTimeCodes sends and checks the SMS codes of registration and
// password reset (users.OTP).
type OneTimeCodes interface {
	// Issue sends a new code; errors.Is(err, users.ErrOTPRateLimited) when
	// the number had too many messages lately.
	Issue(ctx context.Context, purpose users.OTPPurpose, destination string) error
	// Notify sends a text under the same limits as a code.
	Notify(ctx context.Context, destination, text string) error
	// CheckThen checks a code and, if it is right, runs then in the same
	// transaction; the code is used up only if then succeeds. Refusals
	// wrap users.ErrOTPWrong, ErrOTPExpired or ErrOTPTooManyAttempts.
	CheckThen(ctx context.Context, purpose users.OTPPurpose, destination, code string, then func(context.Context) error) error
}

// AccountStore is what registration and reset read and write of accounts (users.SQLStore).
type AccountStore interface {
	Create(ctx context.Context, u *users.User) error
	GetByPhone(ctx context.Context, phone string) (*users.User, error)
	GetByEmail(ctx context.Context, email string) (*users.User, error)
	GetByUsername(ctx context.Context, username string) (*users.User, error)
	Update(ctx context.Context, id string, fn func(*users.User) error) (*users.User, error)
}

// ResetLinkStore checks administrators' one-time reset links (users.ResetLinks).
type ResetLinkStore interface {
	// Peek returns the account of a live link without using it up; a
	// bad link wraps users.ErrResetLinkInvalid.
	Peek(ctx context.Context, token string) (string, error)
	// UseThen uses the link up and runs then in the same transaction.
	UseThen(ctx context.Context, token string, then func(ctx context.Context, userID string) error) error
}

// AccountReader reads an account by id (users.SQLStore).
type AccountReader interface {
	Get(ctx context.Context, id string) (*users.User, error)
}

// PasswordHasher makes the stored form of a new password (users.PasswordHasher).
type PasswordHasher interface {
	Hash(password string) (string, error)
}

// SessionRevoker ends every session of a person whose password was reset (users.Sessions).
type SessionRevoker interface {
	RevokeAllForUser(ctx context.Context, userID string) (int64, error)
}

// LockoutResetter clears failed sign-ins of a key (users.Lockout).
type LockoutResetter interface {
	Reset(ctx context.Context, key string) error
}

// Auditor records registrations and password resets (audit.Log).
type Auditor interface {
	Append(ctx context.Context, e audit.Event) (audit.Event, error)
}

// AccountServices are what self-registration and password reset by SMS
// code need. Every service joins the transaction in its context, so that
// an account is created, or a password changed, only together with the
// use of its code.
type AccountServices struct {
	Codes    OneTimeCodes
	Users    AccountStore
	Hasher   PasswordHasher
	Sessions SessionRevoker
	Lockout  LockoutResetter
	Audit    Auditor
	// Links checks the one-time reset links administrators create
	// (users.ResetLinks) and LinkOwners reads the account a link is for
	// (users.SQLStore); a nil Links turns link resets off.
	Links      ResetLinkStore
	LinkOwners AccountReader
	// SelfRegistration lets people create citizen accounts; when false,
	// /register says registration is closed (404). Reset works either way.
	SelfRegistration bool
}

// The registration and reset pages.
const (
	pageRegister = "register.html"
	pageReset    = "reset.html"
)

// Steps of the registration and reset forms.
const (
	stepPhone   = "phone"   // type the phone number
	stepDetails = "details" // type the code and the rest
	stepDone    = "done"    // reset: finished
	stepLink    = "link"    // reset: an administrator's link, type the new password
	stepClosed  = "closed"  // registration: turned off
)

// Form limits of registration.
const (
	maxPhoneInput  = 32
	maxCodeInput   = 16
	maxDisplayName = 4 * users.MaxDisplayName // bytes: 64 characters of up to 4 bytes
)

// accountForm is what the registration and reset pages show besides the
// common view. The password is never sent back.
type accountForm struct {
	Step        string
	Phone       string // normalized, once valid
	Username    string
	DisplayName string
	LoginURL    string
	RegisterURL string // sign-in page: "" when self-registration is off
	ResetURL    string // sign-in page: "" when reset is off
	Token       string // reset by link: the link's token, posted back once
	SMSLoginURL string // sign-in page: "" when codes by SMS are off
	// PasskeyFirst offers registering with a passkey instead of a password.
	PasskeyFirst bool
}

// registerAccounts adds /register and /reset.
func (p *Pages) registerAccounts(mux *http.ServeMux) {
	mux.HandleFunc("GET /register", p.registerForm)
	mux.HandleFunc("POST /register", p.register)
	mux.HandleFunc("GET /reset", p.resetForm)
	mux.HandleFunc("POST /reset", p.reset)
	p.registerSMSLogin(mux)
}

// withAccountLinks gives the sign-in page its links to registration and
// password reset, when they are on.
func (p *Pages) withAccountLinks(page string, v view) view {
	if page != pageLogin || p.accounts == nil {
		return v
	}
	v.Account.ResetURL = accountURL("/reset", v.ReturnTo)
	v.Account.SMSLoginURL = accountURL(smsLoginPath, v.ReturnTo)
	if p.accounts.SelfRegistration {
		v.Account.RegisterURL = accountURL("/register", v.ReturnTo)
	}
	return v
}

// accountURL is a registration or reset page that comes back to returnTo.
func accountURL(path, returnTo string) string {
	if returnTo == "/" {
		return path
	}
	return path + "?" + url.Values{"return_to": {returnTo}}.Encode()
}

// accountView starts the view of the registration or reset page.
func (p *Pages) accountView(w http.ResponseWriter, r *http.Request, path, lang, returnTo, step string) view {
	v := p.newView(path, lang, returnTo)
	v.CSRF = p.csrfToken(w, r)
	v.Account = accountForm{Step: step, LoginURL: loginURL(returnTo), PasskeyFirst: p.passkeys != nil && path == "/register"}
	return v
}

// registerForm shows the first step, or that registration is closed.
func (p *Pages) registerForm(w http.ResponseWriter, r *http.Request) {
	returnTo := safeReturnTo(r.URL.Query().Get("return_to"))
	lang := p.chooseLang(w, r, returnTo)
	if !p.accounts.SelfRegistration {
		p.render(w, http.StatusNotFound, pageRegister, p.accountView(w, r, "/register", lang, returnTo, stepClosed))
		return
	}
	p.render(w, http.StatusOK, pageRegister, p.accountView(w, r, "/register", lang, returnTo, stepPhone))
}

// register handles both steps: "send" asks for a code, "create" makes the account.
func (p *Pages) register(w http.ResponseWriter, r *http.Request) {
	form, ok := p.readForm(w, r)
	if !ok {
		return
	}
	if !p.accounts.SelfRegistration {
		p.render(w, http.StatusNotFound, pageRegister, p.accountView(w, r, "/register", form.lang, form.returnTo, stepClosed))
		return
	}
	v := p.accountView(w, r, "/register", form.lang, form.returnTo, stepPhone)
	phone, ok := p.postedPhone(w, r, pageRegister, v)
	if !ok {
		return
	}
	v.Account.Phone = phone
	meta := requestMeta(r, form.returnTo)
	ctx := users.WithRequestMeta(r.Context(), meta)
	if r.PostForm.Get("action") == "send" {
		p.sendRegisterCode(w, r.WithContext(ctx), v, phone)
		return
	}
	p.createAccount(w, r.WithContext(ctx), v, phone, meta)
}

// postedPhone reads the phone field; on failure it has re-rendered the first step.
func (p *Pages) postedPhone(w http.ResponseWriter, r *http.Request, page string, v view) (string, bool) {
	raw := strings.TrimSpace(r.PostForm.Get("phone"))
	phone, err := users.NormalizePhone(raw)
	if err != nil || len(raw) > maxPhoneInput {
		v.Account.Step = stepPhone
		if utf8.ValidString(raw) && len(raw) <= maxPhoneInput {
			v.Account.Phone = raw
		}
		v.Message = msg(v.Lang, "account.bad_phone")
		p.render(w, http.StatusBadRequest, page, v)
		return "", false
	}
	return phone, true
}

// sendRegisterCode sends a code to a number without an account. A number
// that has one gets a text saying so instead, and the page says the same
// either way, so that nobody learns from it whose number is registered;
// the text costs the same send limits, so the answer's timing and its
// rate limit are the same too.
func (p *Pages) sendRegisterCode(w http.ResponseWriter, r *http.Request, v view, phone string) {
	ctx := r.Context()
	_, err := p.accounts.Users.GetByPhone(ctx, phone)
	switch {
	case err == nil:
		err = p.accounts.Codes.Notify(ctx, phone, msg(v.Lang, "register.sms_exists"))
	case errors.Is(err, db.ErrNotFound):
		err = p.accounts.Codes.Issue(ctx, users.PurposeRegister, phone)
	}
	p.codeSent(w, r, pageRegister, v, err)
}

// codeSent shows the second step after a send, or why nothing was sent.
func (p *Pages) codeSent(w http.ResponseWriter, r *http.Request, page string, v view, err error) {
	v.Account.Step = stepDetails
	switch {
	case err == nil:
		v.Message = msg(v.Lang, "account.code_sent")
		p.render(w, http.StatusOK, page, v)
	case errors.Is(err, users.ErrOTPRateLimited):
		v.Message = msg(v.Lang, "account.rate_limited")
		w.Header().Set("Retry-After", "60")
		p.render(w, http.StatusTooManyRequests, page, v)
	case errors.Is(err, users.ErrOTPAddressLimited):
		v.Account.Step = stepPhone
		v.Message = msg(v.Lang, "account.address_limited")
		w.Header().Set("Retry-After", "600")
		p.render(w, http.StatusTooManyRequests, page, v)
	default:
		p.log.Error("ui: send one-time code", "err", err)
		v.Account.Step = stepPhone
		v.Message = msg(v.Lang, "account.send_failed")
		p.render(w, http.StatusServiceUnavailable, page, v)
	}
}

// createAccount checks the second step and, with a right code, creates the
// citizen account and signs the person in.
//
// With method=passkey (when passkeys are on) the account gets no password:
// the person is signed in by the code alone and sent straight to add a
// passkey, which from then on is how they sign in.
func (p *Pages) createAccount(w http.ResponseWriter, r *http.Request, v view, phone string, meta users.RequestMeta) {
	v.Account.Step = stepDetails
	code := r.PostForm.Get("code")
	password := r.PostForm.Get("password")
	passkeyFirst := p.passkeys != nil && r.PostForm.Get("method") == "passkey"
	if passkeyFirst {
		password = ""
	}
	u, msgKey := p.newCitizen(r.Context(), r.PostForm.Get("username"), r.PostForm.Get("display_name"), phone, password, !passkeyFirst)
	if u != nil {
		v.Account.Username, v.Account.DisplayName = u.Username, u.DisplayName
	}
	if msgKey == "" && (len(code) > maxCodeInput || len(password) > maxPassword) {
		msgKey = "login.too_long"
	}
	if msgKey != "" {
		v.Message = msg(v.Lang, msgKey)
		p.render(w, http.StatusBadRequest, pageRegister, v)
		return
	}
	method, amr, next := "password", []string{"pwd", "sms"}, v.ReturnTo
	if passkeyFirst {
		method, amr, next = "passkey", []string{"sms"}, passkeysPath+"?welcome=1"
	} else {
		hash, err := p.accounts.Hasher.Hash(password)
		if err != nil {
			p.failInternal(w, r, v.Lang, "hash password", err)
			return
		}
		u.PasswordHash = hash
	}
	err := p.accounts.Codes.CheckThen(r.Context(), users.PurposeRegister, phone, code, func(ctx context.Context) error {
		if err := p.accounts.Users.Create(ctx, u); err != nil {
			return err
		}
		_, err := p.accounts.Audit.Append(ctx, audit.Event{
			Actor: u.ID, Subject: u.ID, ClientID: meta.ClientID, IP: meta.IP, UserAgent: meta.UserAgent,
			Action: users.ActionUserRegister, Result: audit.ResultSuccess,
			Details: map[string]string{"phone": users.MaskPhone(phone), "kind": string(users.KindCitizen), "method": method},
		})
		return err
	})
	if err != nil {
		p.accountFailed(w, r, pageRegister, v, "register", err)
		return
	}
	p.startSessionWith(w, r, u, amr, 1, meta, next, v.Lang)
}

// newCitizen builds the account a registration asks for, or names the
// catalogue key of what is wrong with it. A taken username is said
// plainly: a person cannot choose one otherwise.
func (p *Pages) newCitizen(ctx context.Context, username, displayName, phone, password string, withPassword bool) (*users.User, string) {
	if len(username) > maxIdentifier || len(displayName) > maxDisplayName || !utf8.ValidString(username) || !utf8.ValidString(displayName) {
		return nil, "login.too_long"
	}
	u := &users.User{
		Username: strings.TrimSpace(username), DisplayName: strings.TrimSpace(displayName), Phone: phone,
		Kind: users.KindCitizen, AssuranceLevel: 1, Status: users.StatusActive,
	}
	name, err := users.NormalizeUsername(u.Username)
	switch {
	case err != nil:
		return u, "register.bad_username"
	case u.DisplayName == "" || u.Validate() != nil:
		return u, "register.bad_display_name"
	}
	u.Username = name
	if withPassword {
		if key := passwordPolicyKey(users.CheckPasswordPolicy(password, name, phone)); key != "" {
			return u, key
		}
	}
	if _, err := p.accounts.Users.GetByUsername(ctx, name); err == nil {
		return u, "register.username_taken"
	}
	return u, ""
}

// passwordPolicyKey is the catalogue key of a password policy error, or "".
func passwordPolicyKey(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, users.ErrPasswordTooShort):
		return "password.too_short"
	case errors.Is(err, users.ErrPasswordTooLong):
		return "password.too_long"
	case errors.Is(err, users.ErrPasswordCommon):
		return "password.common"
	case errors.Is(err, users.ErrPasswordIdentifier):
		return "password.identifier"
	}
	return "login.bad_encoding"
}

// accountFailed re-renders the second step with why a code or the work
// after it was refused.
func (p *Pages) accountFailed(w http.ResponseWriter, r *http.Request, page string, v view, what string, err error) {
	status, key := http.StatusBadRequest, ""
	var invalid *users.ValidationError
	switch {
	case errors.Is(err, users.ErrOTPWrong):
		key = "account.code_wrong"
	case errors.Is(err, users.ErrOTPExpired):
		key = "account.code_expired"
	case errors.Is(err, users.ErrOTPTooManyAttempts):
		status, key = http.StatusTooManyRequests, "account.code_dead"
	case errors.Is(err, db.ErrConflict):
		// Another registration took the username or the number meanwhile.
		status, key = http.StatusConflict, "register.conflict"
	case errors.As(err, &invalid):
		key = "register.bad_display_name"
	default:
		p.failInternal(w, r, v.Lang, what, err)
		return
	}
	v.Message = msg(v.Lang, key)
	p.render(w, status, page, v)
}
