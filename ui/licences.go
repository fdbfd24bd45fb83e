package ui

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"time"

	"github.com/skip2/go-qrcode"

	"github.com/govsso/sso/users"
)

// The licence pages of the account centre (电子证照): the person's
// licences, a QR code to show one at a counter, the applications allowed
// to read them, and the page where an application asks to be allowed.
const (
	licencesPath = "/account/licences"
	licenceShare = licencesPath + "/share"
	pageLicences = "licences.html"
)

// LicenceInfo is a licence as its holder sees it.
type LicenceInfo struct {
	Identifier, Name, Number, TypeName, Issuer string
	Status                                     string // valid, suspended, revoked, cancelled, revoked_by_penalty, expired, superseded
	ValidTo                                    string // "" when it does not end
}

// LicenceShareInfo is an application allowed (or asking) to read the
// holder's licences of a type.
type LicenceShareInfo struct {
	ClientID, ClientName, TypeCode, TypeName string
	Since                                    time.Time
}

// Errors LicenceService implementations return, wrapped.
var (
	// ErrLicenceNotFound means the person holds no such licence.
	ErrLicenceNotFound = errors.New("ui: no such licence")
	// ErrLicenceShareInvalid means the application or licence type asked for does not exist.
	ErrLicenceShareInvalid = errors.New("ui: unknown application or licence type")
)

// LicenceService gives the pages the holder's licences and consents.
type LicenceService interface {
	// HolderLicences lists the person's licences and the applications allowed to read them.
	HolderLicences(ctx context.Context, s *users.Session) ([]LicenceInfo, []LicenceShareInfo, error)
	// LicenceQR makes a short-lived payload to show as a QR code.
	LicenceQR(ctx context.Context, s *users.Session, identifier string) (string, time.Time, error)
	// DescribeShare names the application and licence type of a request to read.
	DescribeShare(ctx context.Context, clientID, typeCode string) (*LicenceShareInfo, error)
	// GrantLicenceShare lets the application read the person's licences of the type.
	GrantLicenceShare(ctx context.Context, s *users.Session, clientID, typeCode string, m users.RequestMeta) error
	// RevokeLicenceShare withdraws it.
	RevokeLicenceShare(ctx context.Context, s *users.Session, clientID, typeCode string, m users.RequestMeta) error
}

// LicencePages serves /account/licences.
type LicencePages struct {
	p    *Pages
	svc  LicenceService
	tmpl *template.Template
}

type licenceView struct {
	view
	Licences []LicenceInfo
	Statuses map[string]string
	Shares   []shareRow
	QR       *qrView
	Share    *LicenceShareInfo
	Done     string
	Acting   string // the enterprise the person acts for, "" for themself
}

type shareRow struct {
	LicenceShareInfo
	SinceText string
}

type qrView struct {
	Name, Number, Expires, Payload string
	Image                          template.URL
}

// NewLicencePages returns the pages over p's sessions, CSRF protection,
// languages and error pages.
func NewLicencePages(p *Pages, svc LicenceService) (*LicencePages, error) {
	if p == nil || svc == nil {
		return nil, errors.New("ui: NewLicencePages needs the pages and the licence service")
	}
	layout, err := template.ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("ui: parse layout: %w", err)
	}
	tmpl, err := layout.ParseFS(templateFS, "templates/"+pageLicences)
	if err != nil {
		return nil, fmt.Errorf("ui: parse %s: %w", pageLicences, err)
	}
	p.licences = true
	return &LicencePages{p: p, svc: svc, tmpl: tmpl}, nil
}

// Register adds the pages to mux.
func (lp *LicencePages) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+licencesPath, lp.list)
	mux.HandleFunc("GET "+licencesPath+"/qr", lp.qr)
	mux.HandleFunc("GET "+licenceShare, lp.shareForm)
	mux.HandleFunc("POST "+licenceShare, lp.grant)
	mux.HandleFunc("POST "+licencesPath+"/revoke", lp.revoke)
}

func (lp *LicencePages) list(w http.ResponseWriter, r *http.Request) {
	lang := lp.p.chooseLang(w, r, "/")
	s, ok := lp.p.accountSession(w, r, licencesPath)
	if !ok {
		return
	}
	lp.renderList(w, r, http.StatusOK, lang, s, "")
}

func (lp *LicencePages) renderList(w http.ResponseWriter, r *http.Request, status int, lang string, s *users.Session, done string) {
	lics, shares, err := lp.svc.HolderLicences(r.Context(), s)
	if lp.notAgent(w, r, lang, err) {
		return
	}
	if err != nil {
		lp.p.failInternal(w, r, lang, "list licences", err)
		return
	}
	v := licenceView{view: lp.p.newView(licencesPath, lang, "/"), Licences: lics, Done: done, Statuses: map[string]string{},
		Acting: lp.actingName(r.Context(), s)}
	v.CSRF = lp.p.csrfToken(w, r)
	for _, l := range lics {
		v.Statuses[l.Identifier] = msg(lang, "licences.status_"+l.Status)
	}
	for _, sh := range shares {
		v.Shares = append(v.Shares, shareRow{LicenceShareInfo: sh, SinceText: localTime(sh.Since)})
	}
	lp.render(w, status, v)
}

func (lp *LicencePages) qr(w http.ResponseWriter, r *http.Request) {
	lang := lp.p.chooseLang(w, r, "/")
	id := r.URL.Query().Get("id")
	s, ok := lp.p.accountSession(w, r, licencesPath+"/qr?id="+url.QueryEscape(id))
	if !ok {
		return
	}
	payload, exp, err := lp.svc.LicenceQR(r.Context(), s, id)
	if lp.notAgent(w, r, lang, err) {
		return
	}
	if errors.Is(err, ErrLicenceNotFound) {
		lp.p.fail(w, r, http.StatusNotFound, lang, "licences.not_found_title", "licences.not_found")
		return
	}
	if err != nil {
		lp.p.failInternal(w, r, lang, "licence qr", err)
		return
	}
	png, err := qrcode.Encode(payload, qrcode.Medium, 320)
	if err != nil {
		lp.p.failInternal(w, r, lang, "encode licence qr", err)
		return
	}
	lics, _, err := lp.svc.HolderLicences(r.Context(), s)
	if err != nil {
		lp.p.failInternal(w, r, lang, "list licences", err)
		return
	}
	q := &qrView{Expires: localTime(exp), Payload: payload,
		Image: template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png))}
	for _, l := range lics {
		if l.Identifier == id {
			q.Name, q.Number = l.Name, l.Number
		}
	}
	lp.render(w, http.StatusOK, licenceView{view: lp.p.newView(licencesPath, lang, "/"), QR: q})
}

func (lp *LicencePages) shareForm(w http.ResponseWriter, r *http.Request) {
	lang := lp.p.chooseLang(w, r, "/")
	q := r.URL.Query()
	s, ok := lp.p.accountSession(w, r, licenceShare+"?"+url.Values{"client_id": {q.Get("client_id")}, "type_code": {q.Get("type_code")}}.Encode())
	if !ok {
		return
	}
	info, err := lp.svc.DescribeShare(r.Context(), q.Get("client_id"), q.Get("type_code"))
	if errors.Is(err, ErrLicenceShareInvalid) {
		lp.p.fail(w, r, http.StatusBadRequest, lang, "licences.share_invalid_title", "licences.share_invalid")
		return
	}
	if err != nil {
		lp.p.failInternal(w, r, lang, "describe licence share", err)
		return
	}
	v := licenceView{view: lp.p.newView(licenceShare, lang, "/"), Share: info, Acting: lp.actingName(r.Context(), s)}
	v.CSRF = lp.p.csrfToken(w, r)
	lp.render(w, http.StatusOK, v)
}

func (lp *LicencePages) grant(w http.ResponseWriter, r *http.Request) {
	lp.answer(w, r, true)
}

func (lp *LicencePages) revoke(w http.ResponseWriter, r *http.Request) {
	lp.answer(w, r, false)
}

func (lp *LicencePages) answer(w http.ResponseWriter, r *http.Request, grant bool) {
	form, ok := lp.p.readForm(w, r)
	if !ok {
		return
	}
	s, ok := lp.p.accountSession(w, r, licencesPath)
	if !ok {
		return
	}
	clientID, typeCode := r.PostForm.Get("client_id"), r.PostForm.Get("type_code")
	var err error
	done := "licences.done_granted"
	if grant {
		err = lp.svc.GrantLicenceShare(r.Context(), s, clientID, typeCode, accountMeta(r))
	} else {
		done = "licences.done_revoked"
		err = lp.svc.RevokeLicenceShare(r.Context(), s, clientID, typeCode, accountMeta(r))
	}
	switch {
	case lp.notAgent(w, r, form.lang, err):
	case err == nil:
		lp.renderList(w, r, http.StatusOK, form.lang, s, done)
	case errors.Is(err, ErrLicenceShareInvalid):
		lp.p.fail(w, r, http.StatusBadRequest, form.lang, "licences.share_invalid_title", "licences.share_invalid")
	default:
		lp.p.failInternal(w, r, form.lang, "answer licence share", err)
	}
}

// notAgent answers 403 when the session acts for an enterprise the person
// may no longer act for (their right was taken away after they chose it).
func (lp *LicencePages) notAgent(w http.ResponseWriter, r *http.Request, lang string, err error) bool {
	if !errors.Is(err, users.ErrNotAgent) {
		return false
	}
	lp.p.fail(w, r, http.StatusForbidden, lang, "licences.not_agent_title", "acting.not_agent")
	return true
}

// actingName names the enterprise the session acts for, so that the person
// knows whose licences they see and for whom they consent.
func (lp *LicencePages) actingName(ctx context.Context, s *users.Session) string {
	if s.ActingFor == "" {
		return ""
	}
	if lp.p.acting != nil {
		if opts, err := lp.p.acting.ActingOptions(ctx, s.UserID); err == nil {
			for _, e := range opts {
				if e.ID == s.ActingFor {
					return e.Name
				}
			}
		}
	}
	return s.ActingFor
}

// render writes the page with the headers of every page (see Pages.render).
func (lp *LicencePages) render(w http.ResponseWriter, status int, v licenceView) {
	lp.p.writePage(w, lp.tmpl, pageLicences, status, v.Lang, pageCSP, v)
}
