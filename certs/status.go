package certs

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"time"

	"github.com/govsso/sso/db"
)

// Certificate statuses the JSON status endpoint answers.
const (
	CertGood    = "good"
	CertRevoked = "revoked"
	CertUnknown = "unknown"
)

// CertificateStatus is the answer of GET /certs/api/v1/certificates/{serial}/status.
type CertificateStatus struct {
	Serial           string     `json:"serial"`
	Status           string     `json:"status"` // good, revoked or unknown
	Kind             Kind       `json:"kind,omitempty"`
	NotBefore        *time.Time `json:"not_before,omitempty"`
	NotAfter         *time.Time `json:"not_after,omitempty"`
	Expired          bool       `json:"expired,omitempty"`
	RevokedAt        *time.Time `json:"revoked_at,omitempty"`
	RevocationReason *int       `json:"revocation_reason,omitempty"` // RFC 5280 CRLReason
}

// StatusOf says whether a certificate of this CA is good, revoked (when
// and why) or unknown here; ErrInvalid for a serial that is not hex.
func (s *Service) StatusOf(ctx context.Context, serial string) (*CertificateStatus, error) {
	serial = strings.ToLower(strings.TrimSpace(serial))
	n, ok := new(big.Int).SetString(serial, 16)
	if !ok || n.Sign() <= 0 || len(serial) > 40 || strings.HasPrefix(serial, "0x") || strings.ContainsAny(serial, "+-_") {
		return nil, wrapInvalid("serial must be the certificate's serial number in hexadecimal (at most 40 digits)")
	}
	serial = serialHex(n) // the stored form: whole bytes, lower case
	c, err := s.store.bySerial(ctx, serial)
	if errors.Is(err, db.ErrNotFound) {
		return &CertificateStatus{Serial: serial, Status: CertUnknown}, nil
	}
	if err != nil {
		return nil, err
	}
	out := &CertificateStatus{Serial: c.Serial, Status: CertGood, Kind: c.Kind, NotBefore: &c.NotBefore, NotAfter: &c.NotAfter,
		Expired: s.now().After(c.NotAfter)}
	if c.Status == StatusRevoked {
		reason := c.RevocationReason
		out.Status, out.RevokedAt, out.RevocationReason = CertRevoked, c.RevokedAt, &reason
	}
	return out, nil
}

func (s *Service) handleStatus(w http.ResponseWriter, r *http.Request) {
	st, err := s.StatusOf(r.Context(), r.PathValue("serial"))
	if errors.Is(err, ErrInvalid) {
		writeProblem(w, http.StatusBadRequest, err.Error())
		return
	}
	if err != nil {
		s.serverError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// RevokeUserCertificates revokes every active certificate a person owns,
// with one new CRL, in the caller's transaction when there is one: an
// account that is disabled can no longer sign, and relying parties learn so.
// Each revocation is audited with cause (account_disabled,
// account_deleted ...). It returns how many it revoked.
func (s *Service) RevokeUserCertificates(ctx context.Context, userID string, reason int, cause string) (int, error) {
	if userID == "" {
		return 0, wrapInvalid("user id is required")
	}
	n := 0
	err := s.store.db.InTx(ctx, func(ctx context.Context) error {
		list, err := s.store.activeOwnedBy(ctx, userID)
		if err != nil {
			return err
		}
		if len(list) == 0 {
			return nil
		}
		for _, c := range list {
			if err := s.store.revoke(ctx, c.Serial, s.now(), reason); err != nil {
				return fmt.Errorf("certs: revoke %s: %w", c.Serial, err)
			}
			if err := s.record(ctx, "certs.revoke", userID, map[string]string{"certificate_id": c.ID, "serial": c.Serial,
				"reason": fmt.Sprint(reason), "cause": cause}); err != nil {
				return err
			}
			n++
		}
		caRec, _, caKey, err := s.issuingCA(ctx)
		if err != nil {
			return err
		}
		return s.publishCRL(ctx, caRec, caKey)
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// DestroyUserKeys is the certificates' part of erasing a deleted account:
// it revokes what is still active and destroys the private keys the server
// held for the person's certificates, so that nothing can sign in their
// name again. The certificates themselves stay: they are public, and
// verifying what the person signed before needs them. It returns how many
// keys it destroyed.
func (s *Service) DestroyUserKeys(ctx context.Context, userID string) (int, error) {
	n := 0
	err := s.store.db.InTx(ctx, func(ctx context.Context) error {
		if _, err := s.RevokeUserCertificates(ctx, userID, ReasonCessationOfOperation, "account_erased"); err != nil {
			return err
		}
		var err error
		if n, err = s.store.deleteOwnedKeys(ctx, userID); err != nil || n == 0 {
			return err
		}
		return s.record(ctx, "certs.keys_destroyed", userID, map[string]string{"keys": fmt.Sprint(n), "cause": "account_erased"})
	})
	return n, err
}

// OwnedBy lists the active certificates a person holds, oldest first.
func (s *Service) OwnedBy(ctx context.Context, userID string) ([]*Certificate, error) {
	return s.store.activeOwnedBy(ctx, userID)
}

// RevokeOwned revokes one of the person's own active certificates (the
// holder no longer wants it, or lost the key); a serial the person does not
// hold is ErrNotRevocable, whoever holds it. The CRL is republished and the
// revocation audited, as Revoke does.
func (s *Service) RevokeOwned(ctx context.Context, userID, serial string, reason int) error {
	serial = strings.ToLower(strings.TrimSpace(serial))
	return s.store.db.InTx(ctx, func(ctx context.Context) error {
		c, err := s.store.bySerial(ctx, serial)
		if errors.Is(err, db.ErrNotFound) || (err == nil && (userID == "" || c.OwnerUserID != userID)) {
			return ErrNotRevocable
		}
		if err != nil {
			return err
		}
		return s.Revoke(ctx, serial, reason)
	})
}
