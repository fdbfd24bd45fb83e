package users

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/db"
)

// Assurance levels (实名等级) and how they are reached.
const (
	LevelSelfRegistered = 1 // registered with a phone number
	LevelVerified       = 2 // name and resident ID number confirmed by the population database
	LevelInPerson       = 3 // checked in person by staff, or a passkey/certificate bound after level 2

	MethodSelfRegistered = "self_registered"
	MethodIDVerification = "id_verification"
	MethodInPerson       = "in_person"
	MethodPasskeyBound   = "passkey_bound"
	MethodAdmin          = "admin"
)

// ErrIdentityMismatch means the population database does not know that name
// with that ID number.
var ErrIdentityMismatch = errors.New("name and ID number do not match the population register")

// IdentityVerifier confirms a name and resident ID number against the
// population database, an external service.
type IdentityVerifier interface {
	// Verify returns ErrIdentityMismatch when the pair is not on record, and
	// another error when the service could not answer.
	Verify(ctx context.Context, name, idNumber string) error
}

// HTTPIdentityVerifier asks an HTTP service. Request: POST URL with JSON
// {"name": "…", "id_number": "…", "request_id": "…"}, headers
// X-SSO-Timestamp (Unix seconds) and X-SSO-Signature: sha256=<hex
// HMAC-SHA-256 of timestamp + "." + body under Secret>. Response: 200 with
// {"match": true|false}; anything else is a failure to answer.
type HTTPIdentityVerifier struct {
	URL    string
	Secret []byte
	Client *http.Client // nil: a client with a 10-second timeout
}

// Verify implements IdentityVerifier.
func (h *HTTPIdentityVerifier) Verify(ctx context.Context, name, idNumber string) error {
	body, _ := json.Marshal(map[string]string{"name": name, "id_number": idNumber, "request_id": uuid.NewString()})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	m := hmac.New(sha256.New, h.Secret)
	m.Write([]byte(ts + "."))
	m.Write(body)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-SSO-Timestamp", ts)
	req.Header.Set("X-SSO-Signature", "sha256="+hex.EncodeToString(m.Sum(nil)))
	client := h.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("identity verifier: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("identity verifier answered %d", resp.StatusCode)
	}
	var out struct {
		Match *bool `json:"match"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&out); err != nil || out.Match == nil {
		return errors.New("identity verifier: answer is not {\"match\": true|false}")
	}
	if !*out.Match {
		return ErrIdentityMismatch
	}
	return nil
}

// StaticIdentityVerifier knows a fixed set of name/ID pairs: a test double,
// and a stand-in for development where no register is reachable.
type StaticIdentityVerifier map[string]string // ID number → name

// Verify implements IdentityVerifier.
func (s StaticIdentityVerifier) Verify(_ context.Context, name, idNumber string) error {
	if s[idNumber] == name && name != "" {
		return nil
	}
	return ErrIdentityMismatch
}

// AssuranceEvent records how and when an account reached a level.
type AssuranceEvent struct {
	ID         string    `json:"id"`
	UserID     string    `json:"user_id"`
	Level      int       `json:"level"`
	Method     string    `json:"method"`
	VerifiedBy string    `json:"verified_by,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	At         time.Time `json:"at"`
}

// Assurance raises and lowers assurance levels, recording each change.
type Assurance struct {
	d        *db.DB
	users    Store
	verifier IdentityVerifier
	log      *audit.Log
}

// NewAssurance returns the assurance service.
func NewAssurance(d *db.DB, users Store, v IdentityVerifier, log *audit.Log) *Assurance {
	return &Assurance{d: d, users: users, verifier: v, log: log}
}

// VerifyIdentity raises an account to level 2 when the population register
// confirms the name and resident ID number (check character validated
// first, so typos never reach the register). The verified name and number
// are stored on the account.
func (a *Assurance) VerifyIdentity(ctx context.Context, userID, name, idNumber string) (*User, error) {
	id, err := NormalizeIDNumber(idNumber)
	if err != nil {
		return nil, &ValidationError{Fields: []FieldError{{Field: "id_number", Reason: err.Error()}}}
	}
	name = strings.TrimSpace(name)
	if err := checkDisplayName(name); err != nil || name == "" {
		return nil, &ValidationError{Fields: []FieldError{{Field: "name", Reason: "must be the name on the ID card"}}}
	}
	if err := a.verifier.Verify(ctx, name, id); err != nil {
		a.record(ctx, audit.Event{Actor: userID, Subject: userID, Action: "user.verify_identity", Result: audit.ResultFailure, Reason: reasonOf(err)})
		return nil, err
	}
	var out *User
	err = a.d.InTx(ctx, func(ctx context.Context) error {
		u, err := a.users.Update(ctx, userID, func(u *User) error {
			u.IDNumber, u.DisplayName = id, name
			u.AssuranceLevel = max(u.AssuranceLevel, LevelVerified)
			return nil
		})
		if err != nil {
			return err
		}
		out = u
		if err := a.insertEvent(ctx, userID, LevelVerified, MethodIDVerification, "", ""); err != nil {
			return err
		}
		_, err = a.log.Append(ctx, audit.Event{Actor: userID, Subject: userID, Action: "user.verify_identity", Result: audit.ResultSuccess,
			Details: map[string]string{"level": "2"}})
		return err
	})
	return out, err
}

// SetLevel sets an account's level as staff decided (in person, or an
// administrator's correction), with the reason; it is audited.
func (a *Assurance) SetLevel(ctx context.Context, actorID, userID string, level int, method, reason string) (*User, error) {
	if level < LevelSelfRegistered || level > LevelInPerson {
		return nil, &ValidationError{Fields: []FieldError{{Field: "level", Reason: "must be 1, 2 or 3"}}}
	}
	if strings.TrimSpace(reason) == "" {
		return nil, &ValidationError{Fields: []FieldError{{Field: "reason", Reason: "is required"}}}
	}
	var out *User
	err := a.d.InTx(ctx, func(ctx context.Context) error {
		u, err := a.users.Update(ctx, userID, func(u *User) error { u.AssuranceLevel = level; return nil })
		if err != nil {
			return err
		}
		out = u
		if err := a.insertEvent(ctx, userID, level, method, actorID, reason); err != nil {
			return err
		}
		_, err = a.log.Append(ctx, audit.Event{Actor: actorID, Subject: userID, Action: "user.set_level", Result: audit.ResultSuccess,
			Reason: reason, Details: map[string]string{"level": strconv.Itoa(level), "method": method}})
		return err
	})
	return out, err
}

// History lists how an account's level changed, oldest first.
func (a *Assurance) History(ctx context.Context, userID string) ([]AssuranceEvent, error) {
	rows, err := a.d.Query(ctx, `SELECT id, user_id, level, method, verified_by, reason, at FROM assurance_events WHERE user_id = ? ORDER BY at, id`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []AssuranceEvent
	for rows.Next() {
		var e AssuranceEvent
		if err := rows.Scan(&e.ID, &e.UserID, &e.Level, &e.Method, &e.VerifiedBy, &e.Reason, &e.At); err != nil {
			return nil, a.d.Err(err)
		}
		e.At = e.At.UTC()
		out = append(out, e)
	}
	return out, a.d.Err(rows.Err())
}

func (a *Assurance) insertEvent(ctx context.Context, userID string, level int, method, by, reason string) error {
	_, err := a.d.Exec(ctx, `INSERT INTO assurance_events (id, user_id, level, method, verified_by, reason, at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		uuid.Must(uuid.NewV7()).String(), userID, level, method, by, reason, time.Now().UTC().Truncate(time.Microsecond))
	return err
}

func (a *Assurance) record(ctx context.Context, e audit.Event) {
	_, _ = a.log.Append(ctx, e) // the failure being recorded is returned to the caller anyway
}

func reasonOf(err error) string {
	if errors.Is(err, ErrIdentityMismatch) {
		return "mismatch"
	}
	return "verifier_unavailable"
}
