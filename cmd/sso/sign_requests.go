package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/govsso/sso/certs"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/oauth"
	"github.com/govsso/sso/ui"
	"github.com/govsso/sso/users"
)

// registerSignRequests serves signature requests: the client API under
// /certs/api/v1/sign-requests, the person's pages under
// /account/sign-requests, and the worker that expires requests and sends
// the callbacks, until ctx ends.
func registerSignRequests(ctx context.Context, mux *http.ServeMux, a *app, provider *oauth.Provider, pages *ui.Pages) error {
	ca, err := certService(a)
	if err != nil {
		return err
	}
	sr := certs.NewSignRequests(ca, a.kek, certs.SignRequestConfig{
		Authenticate:   bearerClient(provider),
		ResolveSubject: provider.UserForSubject,
		Users:          a.users,
		SignJWT: func(ctx context.Context, aud string, claims map[string]any) (string, error) {
			return provider.SignNotification(ctx, "sign-request+jwt", aud, claims)
		},
		// As with cookies: only a development server on http:// may call back over http.
		AllowHTTPLocalhost: strings.HasPrefix(a.cfg.Issuer, "http://"),
		AuthenticatePerson: bearerPerson(provider),
	})
	sr.Register(mux)
	sp, err := ui.NewSignRequestPages(pages, signRequestPages{sr: sr, clients: a.oauth, users: a.users})
	if err != nil {
		return err
	}
	sp.Register(mux)
	cp, err := ui.NewCertificatePages(pages, certificatePages{sr: sr, ca: ca})
	if err != nil {
		return err
	}
	cp.Register(mux)
	go sr.RunWorker(ctx)
	// Every node keeps the CRL fresh; a database check makes one re-sign it.
	go ca.RunCRLRefresh(ctx, certs.CRLCheckInterval)
	return nil
}

// signRequestPages gives the pages the signature requests without ui
// importing certs or oauth.
type signRequestPages struct {
	sr      *certs.SignRequests
	clients *oauth.SQLStore
	users   *users.SQLStore
}

func (p signRequestPages) PendingSignRequests(ctx context.Context, s *users.Session) ([]ui.SignRequestInfo, error) {
	list, err := p.sr.Pending(ctx, s.UserID)
	if err != nil {
		return nil, err
	}
	out := make([]ui.SignRequestInfo, 0, len(list))
	for _, r := range list {
		info, err := p.info(ctx, s, r)
		if err != nil {
			return nil, err
		}
		out = append(out, *info)
	}
	return out, nil
}

func (p signRequestPages) SignRequest(ctx context.Context, s *users.Session, id string) (*ui.SignRequestInfo, error) {
	r, err := p.sr.ForUser(ctx, s.UserID, id)
	if err != nil {
		return nil, uiSignError(err)
	}
	return p.info(ctx, s, r)
}

func (p signRequestPages) info(ctx context.Context, s *users.Session, r *certs.SignRequest) (*ui.SignRequestInfo, error) {
	info := &ui.SignRequestInfo{ID: r.ID, Title: r.Title, ClientName: r.ClientID, DigestHex: fmt.Sprintf("%x", r.Digest),
		Status: string(r.Status), CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt,
		CanApprove: certs.SignAuth{AuthTime: s.AuthTime, AMR: s.AMR}.Fresh(r.CreatedAt, time.Now())}
	c, err := p.clients.GetClient(ctx, r.ClientID)
	switch {
	case err == nil && c.Name != "":
		info.ClientName = c.Name
	case err != nil && !errors.Is(err, db.ErrNotFound):
		return nil, err
	}
	u, err := p.users.Get(ctx, s.UserID)
	if err != nil {
		return nil, err
	}
	info.LevelTooLow = u.AssuranceLevel < certs.SignLevel
	return info, nil
}

func (p signRequestPages) ApproveSignRequest(ctx context.Context, s *users.Session, id string, m users.RequestMeta) error {
	_, err := p.sr.Approve(ctx, s.UserID, id, certs.SignAuth{AuthTime: s.AuthTime, AMR: s.AMR}, m)
	return uiSignError(err)
}

func (p signRequestPages) DeclineSignRequest(ctx context.Context, s *users.Session, id string, m users.RequestMeta) error {
	_, err := p.sr.Decline(ctx, s.UserID, id, m)
	return uiSignError(err)
}

// uiSignError says a certs refusal in the words the pages know.
func uiSignError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, db.ErrNotFound):
		return fmt.Errorf("%w: %w", ui.ErrSignRequestNotFound, err)
	case errors.Is(err, certs.ErrSignSettled):
		return fmt.Errorf("%w: %w", ui.ErrSignRequestSettled, err)
	case errors.Is(err, certs.ErrStepUpRequired):
		return fmt.Errorf("%w: %w", ui.ErrSignStepUp, err)
	case errors.Is(err, certs.ErrSignLevel):
		return fmt.Errorf("%w: %w", ui.ErrSignLevel, err)
	}
	return err
}

// revokeCertificatesOnDisable revokes a person's certificates (reason
// cessationOfOperation) in the transaction that disables their account, so
// a disabled account's key signs nothing more and the CRL says so at once.
func revokeCertificatesOnDisable(a *app) func(ctx context.Context, userID string) error {
	return revokeCertificates(a, "account_disabled")
}

// revokeCertificates revokes a person's certificates, audited with cause.
func revokeCertificates(a *app, cause string) func(ctx context.Context, userID string) error {
	return func(ctx context.Context, userID string) error {
		s, err := certService(a)
		if err != nil {
			return err
		}
		_, err = s.RevokeUserCertificates(ctx, userID, certs.ReasonCessationOfOperation, cause)
		return err
	}
}

// destroySigningKeys is the certificates' part of erasing a deleted
// account: its cloud-signing keys are destroyed.
func destroySigningKeys(a *app) func(ctx context.Context, userID string) error {
	return func(ctx context.Context, userID string) error {
		s, err := certService(a)
		if err != nil {
			return err
		}
		_, err = s.DestroyUserKeys(ctx, userID)
		return err
	}
}

// certificatePages issues a certificate for a CSR pasted on the account
// centre's page, and lists and revokes the person's certificates.
type certificatePages struct {
	sr *certs.SignRequests
	ca *certs.Service
}

func (p certificatePages) OwnCertificates(ctx context.Context, userID string) ([]ui.OwnCertificate, error) {
	list, err := p.ca.OwnedBy(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := make([]ui.OwnCertificate, 0, len(list))
	for _, c := range list {
		out = append(out, ui.OwnCertificate{Serial: c.Serial, Subject: c.Subject, NotAfter: c.NotAfter})
	}
	return out, nil
}

func (p certificatePages) RevokeOwnCertificate(ctx context.Context, userID, serial string, _ users.RequestMeta) error {
	err := p.ca.RevokeOwned(ctx, userID, serial, certs.ReasonKeyCompromise)
	if errors.Is(err, certs.ErrNotRevocable) || errors.Is(err, certs.ErrInvalid) {
		return fmt.Errorf("%w: %w", ui.ErrCertificateNotYours, err)
	}
	return err
}

func (p certificatePages) RequestCertificate(ctx context.Context, s *users.Session, csrPEM string, m users.RequestMeta) (string, string, error) {
	rec, chain, err := p.sr.IssueFromCSRWithChain(ctx, s.UserID, "", []byte(csrPEM), m)
	switch {
	case errors.Is(err, certs.ErrInvalid):
		return "", "", fmt.Errorf("%w: %w", ui.ErrCertificateRequest, err)
	case errors.Is(err, certs.ErrSignLevel):
		return "", "", fmt.Errorf("%w: %w", ui.ErrCertificateLevel, err)
	case err != nil:
		return "", "", err
	}
	return string(certs.PEM(rec.DER)), chain, nil
}
