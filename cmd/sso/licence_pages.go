package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/govsso/sso/certs"
	"github.com/govsso/sso/db"
	"github.com/govsso/sso/oauth"
	"github.com/govsso/sso/ui"
	"github.com/govsso/sso/users"
)

// registerLicencePages serves the holder's licence pages of the account centre.
func registerLicencePages(mux *http.ServeMux, a *app, pages *ui.Pages) error {
	ca, err := certService(a)
	if err != nil {
		return err
	}
	lp, err := ui.NewLicencePages(pages, licencePages{lics: certs.NewLicences(ca, a.kek, certs.LicenceConfig{Users: a.users,
		Enterprises: users.NewEnterprises(a.db, a.users)}), clients: a.oauth, users: a.users})
	if err != nil {
		return err
	}
	lp.Register(mux)
	return nil
}

// licencePages gives the pages the holder's licences without ui
// importing certs or oauth.
type licencePages struct {
	lics    *certs.Licences
	clients *oauth.SQLStore
	users   *users.SQLStore
}

// holder is whose licences the session sees: the person's own, or, while
// they act for an enterprise they may still act for, the enterprise's.
func (p licencePages) holder(ctx context.Context, s *users.Session) (*users.User, error) {
	if s.ActingFor != "" {
		return p.lics.ActingHolder(ctx, s.UserID, s.ActingFor)
	}
	return p.users.Get(ctx, s.UserID)
}

func (p licencePages) HolderLicences(ctx context.Context, s *users.Session) ([]ui.LicenceInfo, []ui.LicenceShareInfo, error) {
	u, err := p.holder(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	lics, err := p.lics.HolderLicences(ctx, u)
	if err != nil {
		return nil, nil, err
	}
	types := map[string]string{}
	typeName := func(code string) string {
		if n, ok := types[code]; ok {
			return n
		}
		n := code
		if t, err := p.lics.LicenceType(ctx, code); err == nil {
			n = t.Name
		}
		types[code] = n
		return n
	}
	out := make([]ui.LicenceInfo, 0, len(lics))
	for _, l := range lics {
		out = append(out, ui.LicenceInfo{Identifier: l.Identifier, Name: l.LicenceName, Number: l.LicenceNumber,
			TypeName: typeName(l.TypeCode), Issuer: l.IssuerName, Status: string(l.Status), ValidTo: l.ValidTo})
	}
	consents, err := p.lics.LicenceConsents(ctx, u.ID)
	if err != nil {
		return nil, nil, err
	}
	shares := make([]ui.LicenceShareInfo, 0, len(consents))
	for _, c := range consents {
		name := c.ClientID
		if cl, err := p.clients.GetClient(ctx, c.ClientID); err == nil && cl.Name != "" {
			name = cl.Name
		}
		shares = append(shares, ui.LicenceShareInfo{ClientID: c.ClientID, ClientName: name, TypeCode: c.TypeCode,
			TypeName: typeName(c.TypeCode), Since: c.CreatedAt})
	}
	return out, shares, nil
}

func (p licencePages) LicenceQR(ctx context.Context, s *users.Session, identifier string) (string, time.Time, error) {
	u, err := p.holder(ctx, s)
	if err != nil {
		return "", time.Time{}, err
	}
	payload, exp, err := p.lics.LicenceQR(ctx, u, identifier)
	if errors.Is(err, db.ErrNotFound) || errors.Is(err, certs.ErrLicenceIdentifier) {
		return "", time.Time{}, fmt.Errorf("%w: %w", ui.ErrLicenceNotFound, err)
	}
	return payload, exp, err
}

// DescribeShare accepts only a registered client allowed the licences:read
// scope and a registered licence type.
func (p licencePages) DescribeShare(ctx context.Context, clientID, typeCode string) (*ui.LicenceShareInfo, error) {
	c, err := p.clients.GetClient(ctx, clientID)
	if errors.Is(err, db.ErrNotFound) || (err == nil && !slices.Contains(c.Scopes, certs.ScopeLicencesRead)) {
		return nil, ui.ErrLicenceShareInvalid
	}
	if err != nil {
		return nil, err
	}
	t, err := p.lics.LicenceType(ctx, typeCode)
	if errors.Is(err, db.ErrNotFound) {
		return nil, ui.ErrLicenceShareInvalid
	}
	if err != nil {
		return nil, err
	}
	name := c.Name
	if name == "" {
		name = c.ID
	}
	return &ui.LicenceShareInfo{ClientID: c.ID, ClientName: name, TypeCode: t.TypeCode, TypeName: t.Name}, nil
}

func (p licencePages) GrantLicenceShare(ctx context.Context, s *users.Session, clientID, typeCode string, m users.RequestMeta) error {
	if _, err := p.DescribeShare(ctx, clientID, typeCode); err != nil {
		return err
	}
	u, err := p.holder(ctx, s)
	if err != nil {
		return err
	}
	return p.lics.GrantLicenceConsentAs(ctx, u, s.UserID, clientID, typeCode, m)
}

func (p licencePages) RevokeLicenceShare(ctx context.Context, s *users.Session, clientID, typeCode string, m users.RequestMeta) error {
	u, err := p.holder(ctx, s)
	if err != nil {
		return err
	}
	err = p.lics.RevokeLicenceConsentAs(ctx, u.ID, s.UserID, clientID, typeCode, m)
	if errors.Is(err, db.ErrNotFound) {
		return fmt.Errorf("%w: %w", ui.ErrLicenceShareInvalid, err)
	}
	return err
}
