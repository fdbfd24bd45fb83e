package ui

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/govsso/sso/users"
)

// The signature request pages of the account centre: a department system
// asked the person to sign a document; they see what and for whom, and
// approve (after signing in again if their sign-in is not recent) or
// decline.
const (
	signRequestsPath = "/account/sign-requests"
	pageSignRequests = "sign_requests.html"
)

// SignRequestInfo is a signature request as the person sees it.
type SignRequestInfo struct {
	ID, Title, ClientName, DigestHex string
	Status                           string // pending, signed, declined, expired
	CreatedAt, ExpiresAt             time.Time
	// CanApprove is false when the session must sign in again first.
	CanApprove bool
	// LevelTooLow is true when the person must verify their identity first.
	LevelTooLow bool
}

// Errors SignRequestService implementations return, wrapped.
var (
	// ErrSignRequestNotFound means no such request is addressed to the person.
	ErrSignRequestNotFound = errors.New("ui: no such signature request")
	// ErrSignRequestSettled means it was already signed, declined or expired.
	ErrSignRequestSettled = errors.New("ui: signature request no longer pending")
	// ErrSignStepUp means the session must sign in again to approve.
	ErrSignStepUp = errors.New("ui: sign in again to sign")
	// ErrSignLevel means the person must verify their identity to level 2.
	ErrSignLevel = errors.New("ui: identity level too low to sign")
)

// SignRequestService finds and answers a person's signature requests.
type SignRequestService interface {
	// PendingSignRequests lists what waits for the person, newest first.
	PendingSignRequests(ctx context.Context, s *users.Session) ([]SignRequestInfo, error)
	// SignRequest returns one request addressed to the session's person.
	SignRequest(ctx context.Context, s *users.Session, id string) (*SignRequestInfo, error)
	// ApproveSignRequest signs it with the person's certificate.
	ApproveSignRequest(ctx context.Context, s *users.Session, id string, m users.RequestMeta) error
	// DeclineSignRequest refuses it.
	DeclineSignRequest(ctx context.Context, s *users.Session, id string, m users.RequestMeta) error
}

// SignRequestPages serves /account/sign-requests and the page of each request.
type SignRequestPages struct {
	p    *Pages
	svc  SignRequestService
	tmpl *template.Template
}

// signView is the signature request page: the common view plus its own fields.
type signView struct {
	view
	List      []signRow
	Request   *signRow
	Done      string // catalogue key of the outcome just reached
	ReauthURL string
	VerifyURL string
}

type signRow struct {
	ID, Title, ClientName, Digest, Created, Expires, Status string
	CanApprove, LevelTooLow, Pending                        bool
}

// NewSignRequestPages returns the pages, which use p's sessions, CSRF
// protection, languages and error pages.
func NewSignRequestPages(p *Pages, svc SignRequestService) (*SignRequestPages, error) {
	if p == nil || svc == nil {
		return nil, errors.New("ui: NewSignRequestPages needs the pages and the signature request service")
	}
	layout, err := template.ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("ui: parse layout: %w", err)
	}
	tmpl, err := layout.ParseFS(templateFS, "templates/"+pageSignRequests)
	if err != nil {
		return nil, fmt.Errorf("ui: parse %s: %w", pageSignRequests, err)
	}
	p.signing = true
	return &SignRequestPages{p: p, svc: svc, tmpl: tmpl}, nil
}

// Register adds the pages to mux.
func (sp *SignRequestPages) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+signRequestsPath, sp.list)
	mux.HandleFunc("GET "+signRequestsPath+"/{id}", sp.show)
	mux.HandleFunc("POST "+signRequestsPath+"/{id}/approve", sp.approve)
	mux.HandleFunc("POST "+signRequestsPath+"/{id}/decline", sp.decline)
}

func (sp *SignRequestPages) list(w http.ResponseWriter, r *http.Request) {
	lang := sp.p.chooseLang(w, r, "/")
	s, ok := sp.p.accountSession(w, r, signRequestsPath)
	if !ok {
		return
	}
	list, err := sp.svc.PendingSignRequests(r.Context(), s)
	if err != nil {
		sp.p.failInternal(w, r, lang, "list sign requests", err)
		return
	}
	v := signView{view: sp.p.newView(signRequestsPath, lang, "/")}
	v.List = []signRow{}
	for _, info := range list {
		v.List = append(v.List, row(lang, info))
	}
	sp.render(w, http.StatusOK, v)
}

func (sp *SignRequestPages) show(w http.ResponseWriter, r *http.Request) {
	lang := sp.p.chooseLang(w, r, "/")
	path := signRequestsPath + "/" + r.PathValue("id")
	s, ok := sp.p.accountSession(w, r, path)
	if !ok {
		return
	}
	sp.showRequest(w, r, http.StatusOK, lang, s, "")
}

// showRequest renders one request with an optional message.
func (sp *SignRequestPages) showRequest(w http.ResponseWriter, r *http.Request, status int, lang string, s *users.Session, msgKey string) {
	id := r.PathValue("id")
	info, err := sp.svc.SignRequest(r.Context(), s, id)
	if errors.Is(err, ErrSignRequestNotFound) {
		sp.p.fail(w, r, http.StatusNotFound, lang, "sign.not_found_title", "sign.not_found")
		return
	}
	if err != nil {
		sp.p.failInternal(w, r, lang, "show sign request", err)
		return
	}
	path := signRequestsPath + "/" + id
	v := signView{view: sp.p.newView(path, lang, "/")}
	v.CSRF = sp.p.csrfToken(w, r)
	if msgKey != "" {
		v.Message = msg(lang, msgKey)
	}
	rr := row(lang, *info)
	v.Request = &rr
	v.ReauthURL = loginURL(path)
	v.VerifyURL = verifyPath + "?return_to=" + path
	sp.render(w, status, v)
}

func row(lang string, info SignRequestInfo) signRow {
	st := msg(lang, "sign.status_"+info.Status)
	return signRow{ID: info.ID, Title: info.Title, ClientName: info.ClientName, Digest: groupDigest(info.DigestHex),
		Created: localTime(info.CreatedAt), Expires: localTime(info.ExpiresAt), Status: st,
		Pending: info.Status == "pending", CanApprove: info.CanApprove, LevelTooLow: info.LevelTooLow}
}

// groupDigest spaces a hex digest in groups of eight, for reading it
// against what the department shows.
func groupDigest(h string) string {
	var b strings.Builder
	for i, c := range h {
		if i > 0 && i%8 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func (sp *SignRequestPages) approve(w http.ResponseWriter, r *http.Request) {
	sp.answer(w, r, true)
}

func (sp *SignRequestPages) decline(w http.ResponseWriter, r *http.Request) {
	sp.answer(w, r, false)
}

func (sp *SignRequestPages) answer(w http.ResponseWriter, r *http.Request, approve bool) {
	form, ok := sp.p.readForm(w, r)
	if !ok {
		return
	}
	path := signRequestsPath + "/" + r.PathValue("id")
	s, ok := sp.p.accountSession(w, r, path)
	if !ok {
		return
	}
	var err error
	done := "sign.done_signed"
	if approve {
		err = sp.svc.ApproveSignRequest(r.Context(), s, r.PathValue("id"), accountMeta(r))
	} else {
		done = "sign.done_declined"
		err = sp.svc.DeclineSignRequest(r.Context(), s, r.PathValue("id"), accountMeta(r))
	}
	switch {
	case err == nil:
		v := signView{view: sp.p.newView(path, form.lang, "/"), Done: done}
		sp.render(w, http.StatusOK, v)
	case errors.Is(err, ErrSignStepUp):
		// Sign in again (password, and the second factor if enrolled) and
		// come back to the request.
		seeOther(w, loginURL(path))
	case errors.Is(err, ErrSignRequestNotFound):
		sp.p.fail(w, r, http.StatusNotFound, form.lang, "sign.not_found_title", "sign.not_found")
	case errors.Is(err, ErrSignRequestSettled):
		sp.showRequest(w, r, http.StatusConflict, form.lang, s, "sign.settled")
	case errors.Is(err, ErrSignLevel):
		sp.showRequest(w, r, http.StatusForbidden, form.lang, s, "sign.level_too_low")
	default:
		sp.p.failInternal(w, r, form.lang, "answer sign request", err)
	}
}

// render writes the page with the headers of every page (see Pages.render).
func (sp *SignRequestPages) render(w http.ResponseWriter, status int, v signView) {
	sp.p.writePage(w, sp.tmpl, pageSignRequests, status, v.Lang, pageCSP, v)
}
