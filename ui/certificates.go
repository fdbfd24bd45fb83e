package ui

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"

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

// CertificateService issues a certificate for a request the person pasted.
type CertificateService interface {
	// RequestCertificate returns the certificate and its chain in PEM.
	RequestCertificate(ctx context.Context, s *users.Session, csrPEM string, m users.RequestMeta) (certPEM, chainPEM string, err error)
}

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
}

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
}

func (cp *CertificatePages) form(w http.ResponseWriter, r *http.Request) {
	lang := cp.p.chooseLang(w, r, "/")
	if _, ok := cp.p.accountSession(w, r, certificatesPath); !ok {
		return
	}
	v := certificateView{view: cp.p.newView(certificatesPath, lang, "/")}
	v.CSRF = cp.p.csrfToken(w, r)
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
