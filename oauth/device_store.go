package oauth

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// DeviceStatus is where a device authorization stands.
type DeviceStatus string

// A device authorization starts pending, is approved or denied by a person
// on the /device page, and an approved one is consumed by the poll that
// receives the tokens.
const (
	// DevicePending waits for a person to enter the user code.
	DevicePending DeviceStatus = "pending"
	// DeviceApproved lets the next poll have the tokens.
	DeviceApproved DeviceStatus = "approved"
	// DeviceDenied makes every poll fail with access_denied.
	DeviceDenied DeviceStatus = "denied"
	// DeviceConsumed has given out its tokens; the device code is spent.
	DeviceConsumed DeviceStatus = "consumed"
)

// DeviceAuthorization is one request of the device authorization grant
// (RFC 8628): a kiosk's sign-in that a person completes on another device.
type DeviceAuthorization struct {
	// DeviceCodeHash is the SHA-256 of the device code the device polls with.
	DeviceCodeHash string `json:"-"`
	// UserCode is the normalized code a person types (eight letters, no dash).
	UserCode string       `json:"user_code"`
	ClientID string       `json:"client_id"`
	Scopes   []string     `json:"scopes"`
	Status   DeviceStatus `json:"status"`
	// UserID, BrowserSessionID, ACR, AMR and AuthTime describe the person
	// who approved and their sign-in; they are empty until then.
	UserID           string    `json:"user_id,omitempty"`
	BrowserSessionID string    `json:"sid,omitempty"`
	ACR              int       `json:"acr,omitempty"`
	AMR              []string  `json:"amr,omitempty"`
	AuthTime         time.Time `json:"auth_time,omitzero"`
	// ActingFor is the enterprise the person acted for when approving, if any.
	ActingFor string `json:"acting_for,omitempty"`
	// Interval is how long the device must wait between polls.
	Interval  time.Duration `json:"interval"`
	CreatedAt time.Time     `json:"created_at"`
	ExpiresAt time.Time     `json:"expires_at"`
	// LastPolledAt is zero until the device first polls.
	LastPolledAt time.Time `json:"last_polled_at,omitzero"`
}

const deviceColumns = `device_code_hash, user_code, client_id, scopes, status, user_id, browser_session_id,
	acr, amr, auth_time, interval_seconds, created_at, expires_at, last_polled_at, acting_for`

// CreateDeviceAuthorization stores a new, pending device authorization. A
// user code or device code already in use is an error wrapping db.ErrConflict.
func (s *SQLStore) CreateDeviceAuthorization(ctx context.Context, a *DeviceAuthorization) error {
	_, err := s.db.Exec(ctx, `INSERT INTO oauth_device_codes (`+deviceColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		a.DeviceCodeHash, a.UserCode, a.ClientID, strings.Join(a.Scopes, " "), string(a.Status), a.UserID, a.BrowserSessionID,
		a.ACR, strings.Join(a.AMR, " "), nullTime(a.AuthTime), int64(a.Interval/time.Second),
		dbTime(a.CreatedAt), dbTime(a.ExpiresAt), nullTime(a.LastPolledAt), a.ActingFor)
	if err != nil {
		return fmt.Errorf("create device authorization: %w", err)
	}
	return nil
}

// DeviceAuthorizationByUserCode returns the device authorization of a
// normalized user code, whatever its status, or an error wrapping
// db.ErrNotFound.
func (s *SQLStore) DeviceAuthorizationByUserCode(ctx context.Context, userCode string) (*DeviceAuthorization, error) {
	return s.getDevice(ctx, `user_code = ?`, userCode, "")
}

// LockDeviceAuthorization returns the device authorization of a device code
// hash, locked until the context's transaction ends so that concurrent polls
// take turns, or an error wrapping db.ErrNotFound.
func (s *SQLStore) LockDeviceAuthorization(ctx context.Context, deviceCodeHash string) (*DeviceAuthorization, error) {
	return s.getDevice(ctx, `device_code_hash = ?`, deviceCodeHash, s.db.ForUpdate())
}

func (s *SQLStore) getDevice(ctx context.Context, where, arg, lock string) (*DeviceAuthorization, error) {
	var (
		a                   DeviceAuthorization
		scopes, status, amr string
		interval            int64
		authTime, polled    sql.NullTime
	)
	err := s.db.Err(s.db.QueryRow(ctx, `SELECT `+deviceColumns+` FROM oauth_device_codes WHERE `+where+lock, arg).Scan(
		&a.DeviceCodeHash, &a.UserCode, &a.ClientID, &scopes, &status, &a.UserID, &a.BrowserSessionID,
		&a.ACR, &amr, &authTime, &interval, &a.CreatedAt, &a.ExpiresAt, &polled, &a.ActingFor))
	if err != nil {
		return nil, fmt.Errorf("device authorization: %w", err)
	}
	a.Scopes, a.AMR, a.Status = strings.Fields(scopes), strings.Fields(amr), DeviceStatus(status)
	a.Interval = time.Duration(interval) * time.Second
	a.CreatedAt, a.ExpiresAt = a.CreatedAt.UTC(), a.ExpiresAt.UTC()
	if authTime.Valid {
		a.AuthTime = authTime.Time.UTC()
	}
	if polled.Valid {
		a.LastPolledAt = polled.Time.UTC()
	}
	return &a, nil
}

// DecideDeviceAuthorization approves (with the approver's user and sign-in
// details from d) or denies a pending device authorization that has not
// expired at now. Anything else is an error wrapping db.ErrNotFound, so a
// code cannot be decided twice.
func (s *SQLStore) DecideDeviceAuthorization(ctx context.Context, userCode string, approve bool, d *DeviceAuthorization, now time.Time) error {
	status := DeviceDenied
	if approve {
		status = DeviceApproved
	}
	err := s.db.ExecOne(ctx, `UPDATE oauth_device_codes SET status = ?, user_id = ?, browser_session_id = ?, acr = ?, amr = ?, auth_time = ?,
		acting_for = ? WHERE user_code = ? AND status = ? AND expires_at > ?`,
		string(status), d.UserID, d.BrowserSessionID, d.ACR, strings.Join(d.AMR, " "), nullTime(d.AuthTime), d.ActingFor,
		userCode, string(DevicePending), dbTime(now))
	if err != nil {
		return fmt.Errorf("decide device authorization: %w", err)
	}
	return nil
}

// RecordDevicePoll notes a poll at now and the interval the device must
// keep from now on.
func (s *SQLStore) RecordDevicePoll(ctx context.Context, deviceCodeHash string, now time.Time, interval time.Duration) error {
	err := s.db.ExecOne(ctx, `UPDATE oauth_device_codes SET last_polled_at = ?, interval_seconds = ? WHERE device_code_hash = ?`,
		dbTime(now), int64(interval/time.Second), deviceCodeHash)
	if err != nil {
		return fmt.Errorf("record device poll: %w", err)
	}
	return nil
}

// ConsumeDeviceAuthorization marks an approved device authorization
// consumed. The update is conditional on the approved status, so of two
// polls only one wins; the other gets an error wrapping db.ErrNotFound.
func (s *SQLStore) ConsumeDeviceAuthorization(ctx context.Context, deviceCodeHash string, now time.Time) error {
	err := s.db.ExecOne(ctx, `UPDATE oauth_device_codes SET status = ?, last_polled_at = ? WHERE device_code_hash = ? AND status = ?`,
		string(DeviceConsumed), dbTime(now), deviceCodeHash, string(DeviceApproved))
	if err != nil {
		return fmt.Errorf("consume device authorization: %w", err)
	}
	return nil
}

// PurgeDeviceAuthorizations deletes the device authorizations that expired
// before before and says how many.
func (s *SQLStore) PurgeDeviceAuthorizations(ctx context.Context, before time.Time) (int64, error) {
	n, err := s.execCount(ctx, `DELETE FROM oauth_device_codes WHERE expires_at < ?`, dbTime(before))
	if err != nil {
		return 0, fmt.Errorf("purge device authorizations: %w", err)
	}
	return n, nil
}
