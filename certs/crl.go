package certs

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/smx509"

	"github.com/govsso/sso/db"
)

// CRLValidity is the CRL's nextUpdate distance; a CRL is also rebuilt on
// every revocation.
const CRLValidity = 7 * 24 * time.Hour

// RFC 5280 CRLReason codes a revocation may give.
const (
	ReasonUnspecified          = 0
	ReasonKeyCompromise        = 1
	ReasonAffiliationChanged   = 3
	ReasonSuperseded           = 4
	ReasonCessationOfOperation = 5
	ReasonCertificateHold      = 6
)

// ErrNotRevocable means no active end-entity certificate has the serial.
var ErrNotRevocable = errors.New("certs: no active end-entity certificate with this serial")

// Revoke revokes an end-entity certificate by its hex serial and publishes
// a new CRL in the same transaction.
func (s *Service) Revoke(ctx context.Context, serial string, reason int) error {
	serial = strings.ToLower(strings.TrimSpace(serial))
	if _, err := hex.DecodeString(serial); err != nil || serial == "" {
		return wrapInvalid("serial must be hexadecimal")
	}
	if reason < 0 || reason > 10 || reason == 7 {
		return wrapInvalid("reason %d is not an RFC 5280 CRLReason", reason)
	}
	return s.store.db.InTx(ctx, func(ctx context.Context) error {
		c, err := s.store.bySerial(ctx, serial)
		if errors.Is(err, db.ErrNotFound) {
			return ErrNotRevocable
		}
		if err != nil {
			return err
		}
		if c.Kind != KindUser && c.Kind != KindOrg {
			return ErrNotRevocable
		}
		if err := s.store.revoke(ctx, serial, s.now(), reason); errors.Is(err, db.ErrNotFound) {
			return ErrNotRevocable
		} else if err != nil {
			return err
		}
		caRec, _, caKey, err := s.issuingCA(ctx)
		if err != nil {
			return err
		}
		if err := s.publishCRL(ctx, caRec, caKey); err != nil {
			return err
		}
		return s.record(ctx, "certs.revoke", c.OwnerUserID, map[string]string{
			"certificate_id": c.ID, "serial": serial, "reason": fmt.Sprint(reason)})
	})
}

// RefreshCRL re-signs the CRL, for the schedule that keeps nextUpdate ahead.
func (s *Service) RefreshCRL(ctx context.Context) error {
	return s.store.db.InTx(ctx, func(ctx context.Context) error {
		caRec, _, caKey, err := s.issuingCA(ctx)
		if err != nil {
			return err
		}
		return s.publishCRL(ctx, caRec, caKey)
	})
}

// CRL returns the current DER CRL of the issuing CA.
func (s *Service) CRL(ctx context.Context) ([]byte, error) {
	ca, err := s.CA(ctx)
	if err != nil {
		return nil, err
	}
	der, _, err := s.store.crl(ctx, ca.Issuer.ID)
	return der, err
}

// publishCRL signs a CRL listing every revoked end entity, numbered one
// past the last, with SM3withSM2 by the issuing CA. Runs in a transaction.
func (s *Service) publishCRL(ctx context.Context, caRec *Certificate, caKey *sm2.PrivateKey) error {
	number, err := s.store.crlNumberForUpdate(ctx, caRec.ID)
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		return err
	}
	revoked, err := s.store.revokedEndEntities(ctx)
	if err != nil {
		return err
	}
	caCert, err := caRec.Parsed()
	if err != nil {
		return err
	}
	now := s.now().Truncate(time.Second)
	tpl := &x509.RevocationList{
		Number:     big.NewInt(number + 1),
		ThisUpdate: now,
		NextUpdate: now.Add(CRLValidity),
	}
	for _, c := range revoked {
		n, _ := new(big.Int).SetString(c.Serial, 16)
		tpl.RevokedCertificateEntries = append(tpl.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber: n, RevocationTime: c.RevokedAt.UTC(), ReasonCode: c.RevocationReason,
		})
	}
	der, err := smx509.CreateRevocationList(rand.Reader, tpl, caCert, caKey)
	if err != nil {
		return fmt.Errorf("certs: sign crl: %w", err)
	}
	return s.store.saveCRL(ctx, caRec.ID, number+1, der, now)
}

// The CRL schedule: every node checks each CRLCheckInterval and re-signs a
// CRL older than CRLRefreshAge, so nextUpdate (CRLValidity) always lies
// days ahead even when nothing is revoked.
const (
	CRLRefreshAge    = 24 * time.Hour
	CRLCheckInterval = time.Hour
)

// RefreshCRLIfDue re-signs the CRL when none is published or the current
// one was signed maxAge or longer ago, and says whether it did. The age is
// read under the CRL row's lock in the transaction that publishes, so when
// several nodes run the schedule the first re-signs and the others find a
// fresh CRL and do nothing.
func (s *Service) RefreshCRLIfDue(ctx context.Context, maxAge time.Duration) (bool, error) {
	refreshed := false
	err := s.store.db.InTx(ctx, func(ctx context.Context) error {
		caRec, _, caKey, err := s.issuingCA(ctx)
		if err != nil {
			return err
		}
		_, thisUpdate, err := s.store.crlForUpdate(ctx, caRec.ID)
		switch {
		case errors.Is(err, db.ErrNotFound):
		case err != nil:
			return err
		case s.now().Sub(thisUpdate) < maxAge:
			return nil
		}
		if err := s.publishCRL(ctx, caRec, caKey); err != nil {
			return err
		}
		refreshed = true
		return s.record(ctx, "certs.crl_refresh", caRec.ID, map[string]string{"reason": "schedule"})
	})
	return refreshed, err
}

// RunCRLRefresh keeps the CRL fresh (RefreshCRLIfDue with CRLRefreshAge)
// every interval until ctx ends; without a CA it waits for one.
func (s *Service) RunCRLRefresh(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if _, err := s.RefreshCRLIfDue(ctx, CRLRefreshAge); err != nil && !errors.Is(err, ErrNoCA) && ctx.Err() == nil {
			s.cfg.Logger.ErrorContext(ctx, "certs: scheduled CRL refresh", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
