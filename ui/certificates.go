package ui

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"time"

	"github.com/govsso/sso/users"
)

// The certificate page of the account centre: a person at level 2 who
// holds an SM2 key (in a USB key or their own software) pastes a PKCS #10
// request and receives a signing certificate for it.
const (
	certificatesPath = "/account/certificates"
	pageCertificates = "certificates.html"
	// maxCSRField bounds the pasted request; an SM2 CSR in PEM is under 1 KiB.
	maxCSRField = 8 << 10
)

// Errors CertificateService implementations return, wrapped.
var (
	// ErrCertificateLevel means the person must verify their identity to level 2 first.
	ErrCertificateLevel = errors.New("ui: identity level too low for a signing certificate")
	// ErrCertificateRequest means the pasted text is not a valid SM2 CSR.
	ErrCertificateRequest = errors.New("ui: not a valid certificate request")
)

// CertificateService issues a certificate for a request the person
// pasted, and lists and revokes the certificates the person holds.
type CertificateService interface {
	// RequestCertificate returns the certificate and its chain in PEM.
	RequestCertificate(ctx context.Context, s *users.Session, csrPEM string, m users.RequestMeta) (certPEM, chainPEM string, err error)
	// OwnCertificates lists the person's active certificates.
	OwnCertificates(ctx context.Context, userID string) ([]OwnCertificate, error)
	// RevokeOwnCertificate revokes one of them; ErrCertificateNotYours for any other serial.
	RevokeOwnCertificate(ctx context.Context, userID, serial string, m users.RequestMeta) error
}

// OwnCertificate is a certificate as its holder sees it listed.
type OwnCertificate struct {
	Serial, Subject string
	NotAfter        time.Time
}

// ErrCertificateNotYours means the serial names no active certificate of the person.
var ErrCertificateNotYours = errors.New("ui: no active certificate of yours has this serial")

// certificatesRevokePath revokes one of the person's certificates.
const certificatesRevokePath = certificatesPath + "/revoke"

// CertificatePages serves /account/certificates.
type CertificatePages struct {
	p    *Pages
	svc  CertificateService
	tmpl *template.Template
}

type certificateView struct {
	view
	CertificatePEM, ChainPEM string
	VerifyURL                string
	Owned                    []ownCertificateRow
}

type ownCertificateRow struct{ Serial, Subject, NotAfter string }

// NewCertificatePages returns the page over p's sessions, CSRF protection,
// languages and error pages.
func NewCertificatePages(p *Pages, svc CertificateService) (*CertificatePages, error) {
	if p == nil || svc == nil {
		return nil, errors.New("ui: NewCertificatePages needs the pages and the certificate service")
	}
	layout, err := template.ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("ui: parse layout: %w", err)
	}
	tmpl, err := layout.ParseFS(templateFS, "templates/"+pageCertificates)
	if err != nil {
		return nil, fmt.Errorf("ui: parse %s: %w", pageCertificates, err)
	}
	p.certificates = true
	return &CertificatePages{p: p, svc: svc, tmpl: tmpl}, nil
}

// Register adds the page to mux.
func (cp *CertificatePages) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+certificatesPath, cp.form)
	mux.HandleFunc("POST "+certificatesPath, cp.submit)
	mux.HandleFunc("POST "+certificatesRevokePath, cp.revoke)
}

// withOwned adds the person's certificates to the page.
func (cp *CertificatePages) withOwned(r *http.Request, userID string, v *certificateView) error {
	list, err := cp.svc.OwnCertificates(r.Context(), userID)
	if err != nil {
		return err
	}
	for _, c := range list {
		v.Owned = append(v.Owned, ownCertificateRow{Serial: c.Serial, Subject: c.Subject, NotAfter: c.NotAfter.In(chinaTime).Format(time.DateOnly)})
	}
	return nil
}

// revoke revokes one of the person's certificates: a lost key, a device
// given away. Signatures made before stay valid for the time they were made.
func (cp *CertificatePages) revoke(w http.ResponseWriter, r *http.Request) {
	form, ok := cp.p.readForm(w, r)
	if !ok {
		return
	}
	s, ok := cp.p.accountSession(w, r, certificatesPath)
	if !ok {
		return
	}
	v := certificateView{view: cp.p.newView(certificatesPath, form.lang, "/")}
	v.CSRF = cp.p.csrfToken(w, r)
	serial := r.PostForm.Get("serial")
	status := http.StatusOK
	err := cp.svc.RevokeOwnCertificate(r.Context(), s.UserID, serial, accountMeta(r))
	switch {
	case err == nil:
		v.Message = msg(form.lang, "certs.revoked")
	case errors.Is(err, ErrCertificateNotYours):
		status, v.Message = http.StatusNotFound, msg(form.lang, "certs.not_yours")
	default:
		cp.p.failInternal(w, r, form.lang, "revoke own certificate", err)
		return
	}
	if err := cp.withOwned(r, s.UserID, &v); err != nil {
		cp.p.failInternal(w, r, form.lang, "list certificates", err)
		return
	}
	cp.render(w, status, v)
}

func (cp *CertificatePages) form(w http.ResponseWriter, r *http.Request) {
	lang := cp.p.chooseLang(w, r, "/")
	s, ok := cp.p.accountSession(w, r, certificatesPath)
	if !ok {
		return
	}
	v := certificateView{view: cp.p.newView(certificatesPath, lang, "/")}
	v.CSRF = cp.p.csrfToken(w, r)
	if err := cp.withOwned(r, s.UserID, &v); err != nil {
		cp.p.failInternal(w, r, lang, "list certificates", err)
		return
	}
	cp.render(w, http.StatusOK, v)
}

func (cp *CertificatePages) submit(w http.ResponseWriter, r *http.Request) {
	form, ok := cp.p.readForm(w, r)
	if !ok {
		return
	}
	s, ok := cp.p.accountSession(w, r, certificatesPath)
	if !ok {
		return
	}
	v := certificateView{view: cp.p.newView(certificatesPath, form.lang, "/")}
	v.CSRF = cp.p.csrfToken(w, r)
	csr := r.PostForm.Get("csr_pem")
	if len(csr) > maxCSRField || csr == "" {
		v.Message = msg(form.lang, "certs.csr_invalid")
		cp.render(w, http.StatusBadRequest, v)
		return
	}
	certPEM, chainPEM, err := cp.svc.RequestCertificate(r.Context(), s, csr, accountMeta(r))
	switch {
	case err == nil:
		v.CertificatePEM, v.ChainPEM = certPEM, chainPEM
		cp.render(w, http.StatusCreated, v)
	case errors.Is(err, ErrCertificateRequest):
		v.Message = msg(form.lang, "certs.csr_invalid")
		cp.render(w, http.StatusBadRequest, v)
	case errors.Is(err, ErrCertificateLevel):
		v.Message = msg(form.lang, "certs.level_too_low")
		v.VerifyURL = verifyPath + "?return_to=" + certificatesPath
		cp.render(w, http.StatusForbidden, v)
	default:
		cp.p.failInternal(w, r, form.lang, "request certificate", err)
	}
}

// render writes the page with the headers of every page (see Pages.render).
func (cp *CertificatePages) render(w http.ResponseWriter, status int, v certificateView) {
	cp.p.writePage(w, cp.tmpl, pageCertificates, status, v.Lang, pageCSP, v)
}
