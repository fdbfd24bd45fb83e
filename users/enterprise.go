package users

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/govsso/sso/db"
)

// Roles a person can hold in an enterprise.
const (
	RoleLegalRepresentative = "legal_representative" // 法定代表人
	RoleAgent               = "agent"                // 经办人
)

// Enterprise is a legal person. Its account (ID, kind enterprise) is what
// tokens name when a person acts for it.
type Enterprise struct {
	ID         string    `json:"id"`
	CreditCode string    `json:"credit_code"`
	Name       string    `json:"name"`
	LegalRepID string    `json:"legal_representative_id"`
	CreatedAt  time.Time `json:"created_at"`
}

// Agent is a person who may act for an enterprise.
type Agent struct {
	UserID  string    `json:"user_id"`
	Role    string    `json:"role"`
	AddedAt time.Time `json:"added_at"`
}

// ErrNotAgent means the person may not act for the enterprise.
var ErrNotAgent = errors.New("not an agent of this enterprise")

// Enterprises keeps enterprises, their legal representatives and agents.
type Enterprises struct {
	d     *db.DB
	users Store
}

// NewEnterprises returns the enterprise store; accounts are created in users.
func NewEnterprises(d *db.DB, users Store) *Enterprises { return &Enterprises{d: d, users: users} }

// Create registers an enterprise by its unified social credit code (check
// character validated), creates its account, and makes legalRepID its legal
// representative — all in one transaction.
func (e *Enterprises) Create(ctx context.Context, creditCode, name, legalRepID string) (*Enterprise, error) {
	code, err := NormalizeCreditCode(creditCode)
	if err != nil {
		return nil, &ValidationError{Fields: []FieldError{{Field: "credit_code", Reason: err.Error()}}}
	}
	name = strings.TrimSpace(name)
	if err := checkDisplayName(name); err != nil || name == "" {
		return nil, &ValidationError{Fields: []FieldError{{Field: "name", Reason: "must be 1 to 64 characters of text"}}}
	}
	ent := &Enterprise{CreditCode: code, Name: name, LegalRepID: legalRepID}
	err = e.d.InTx(ctx, func(ctx context.Context) error {
		rep, err := e.users.Get(ctx, legalRepID)
		if err != nil {
			return fmt.Errorf("legal representative: %w", err)
		}
		if rep.Kind == KindEnterprise {
			return &ValidationError{Fields: []FieldError{{Field: "legal_representative_id", Reason: "must be a person, not an enterprise"}}}
		}
		acct := &User{Username: strings.ToLower(code), Kind: KindEnterprise, DisplayName: name}
		if err := e.users.Create(ctx, acct); err != nil {
			if errors.Is(err, db.ErrConflict) {
				return fmt.Errorf("enterprise %s %w", code, db.ErrConflict)
			}
			return err
		}
		ent.ID, ent.CreatedAt = acct.ID, acct.CreatedAt
		if _, err := e.d.Exec(ctx, `INSERT INTO enterprises (user_id, credit_code, name, legal_rep_user_id, created_at) VALUES (?, ?, ?, ?, ?)`,
			ent.ID, code, name, legalRepID, ent.CreatedAt); err != nil {
			if errors.Is(err, db.ErrConflict) {
				return fmt.Errorf("enterprise %s %w", code, db.ErrConflict)
			}
			return err
		}
		return e.addAgent(ctx, ent.ID, legalRepID, RoleLegalRepresentative)
	})
	if err != nil {
		return nil, err
	}
	return ent, nil
}

func (e *Enterprises) addAgent(ctx context.Context, enterpriseID, userID, role string) error {
	_, err := e.d.Exec(ctx, `INSERT INTO enterprise_agents (enterprise_id, user_id, role, added_at) VALUES (?, ?, ?, ?)`,
		enterpriseID, userID, role, time.Now().UTC().Truncate(time.Microsecond))
	if errors.Is(err, db.ErrConflict) {
		return fmt.Errorf("agent %w", db.ErrConflict)
	}
	return err
}

// Get returns the enterprise whose account is id.
func (e *Enterprises) Get(ctx context.Context, id string) (*Enterprise, error) {
	ent := &Enterprise{}
	err := e.d.QueryRow(ctx, `SELECT user_id, credit_code, name, legal_rep_user_id, created_at FROM enterprises WHERE user_id = ?`, id).
		Scan(&ent.ID, &ent.CreditCode, &ent.Name, &ent.LegalRepID, &ent.CreatedAt)
	if err != nil {
		return nil, fmt.Errorf("enterprise %s: %w", id, e.d.Err(err))
	}
	ent.CreatedAt = ent.CreatedAt.UTC()
	return ent, nil
}

// AddAgent lets a person act for the enterprise. Only a person (not an
// enterprise account) can be an agent.
func (e *Enterprises) AddAgent(ctx context.Context, enterpriseID, userID string) error {
	return e.d.InTx(ctx, func(ctx context.Context) error {
		if _, err := e.Get(ctx, enterpriseID); err != nil {
			return err
		}
		u, err := e.users.Get(ctx, userID)
		if err != nil {
			return err
		}
		if u.Kind == KindEnterprise {
			return &ValidationError{Fields: []FieldError{{Field: "user_id", Reason: "must be a person, not an enterprise"}}}
		}
		return e.addAgent(ctx, enterpriseID, userID, RoleAgent)
	})
}

// RemoveAgent takes the right to act away. The legal representative cannot
// be removed, only replaced with TransferLegalRepresentative.
func (e *Enterprises) RemoveAgent(ctx context.Context, enterpriseID, userID string) error {
	err := e.d.ExecOne(ctx, `DELETE FROM enterprise_agents WHERE enterprise_id = ? AND user_id = ? AND role = ?`, enterpriseID, userID, RoleAgent)
	if errors.Is(err, db.ErrNotFound) {
		return fmt.Errorf("agent %s of enterprise %s: %w", userID, enterpriseID, db.ErrNotFound)
	}
	return err
}

// TransferLegalRepresentative makes another person the legal representative;
// the previous one stays an ordinary agent.
func (e *Enterprises) TransferLegalRepresentative(ctx context.Context, enterpriseID, newRepID string) error {
	return e.d.InTx(ctx, func(ctx context.Context) error {
		ent, err := e.Get(ctx, enterpriseID)
		if err != nil {
			return err
		}
		if newRepID == ent.LegalRepID {
			return nil
		}
		u, err := e.users.Get(ctx, newRepID)
		if err != nil {
			return err
		}
		if u.Kind == KindEnterprise {
			return &ValidationError{Fields: []FieldError{{Field: "legal_representative_id", Reason: "must be a person, not an enterprise"}}}
		}
		if _, err := e.d.Exec(ctx, `UPDATE enterprise_agents SET role = ? WHERE enterprise_id = ? AND user_id = ?`, RoleAgent, enterpriseID, ent.LegalRepID); err != nil {
			return err
		}
		if _, err := e.d.Exec(ctx, `DELETE FROM enterprise_agents WHERE enterprise_id = ? AND user_id = ?`, enterpriseID, newRepID); err != nil {
			return err
		}
		if err := e.addAgent(ctx, enterpriseID, newRepID, RoleLegalRepresentative); err != nil {
			return err
		}
		_, err = e.d.Exec(ctx, `UPDATE enterprises SET legal_rep_user_id = ? WHERE user_id = ?`, newRepID, enterpriseID)
		return err
	})
}

// Agents lists who may act for the enterprise, legal representative first.
func (e *Enterprises) Agents(ctx context.Context, enterpriseID string) ([]Agent, error) {
	rows, err := e.d.Query(ctx, `SELECT user_id, role, added_at FROM enterprise_agents WHERE enterprise_id = ?
		ORDER BY CASE role WHEN 'legal_representative' THEN 0 ELSE 1 END, added_at, user_id`, enterpriseID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Agent
	for rows.Next() {
		var a Agent
		if err := rows.Scan(&a.UserID, &a.Role, &a.AddedAt); err != nil {
			return nil, e.d.Err(err)
		}
		a.AddedAt = a.AddedAt.UTC()
		out = append(out, a)
	}
	return out, e.d.Err(rows.Err())
}

// ActingOptions lists the enterprises a person may act for, by name.
func (e *Enterprises) ActingOptions(ctx context.Context, userID string) ([]*Enterprise, error) {
	rows, err := e.d.Query(ctx, `SELECT e.user_id, e.credit_code, e.name, e.legal_rep_user_id, e.created_at
		FROM enterprises e JOIN enterprise_agents a ON a.enterprise_id = e.user_id WHERE a.user_id = ? ORDER BY e.name, e.user_id`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Enterprise
	for rows.Next() {
		ent := &Enterprise{}
		if err := rows.Scan(&ent.ID, &ent.CreditCode, &ent.Name, &ent.LegalRepID, &ent.CreatedAt); err != nil {
			return nil, e.d.Err(err)
		}
		ent.CreatedAt = ent.CreatedAt.UTC()
		out = append(out, ent)
	}
	return out, e.d.Err(rows.Err())
}

// CheckAgent returns ErrNotAgent unless userID may act for enterpriseID.
func (e *Enterprises) CheckAgent(ctx context.Context, enterpriseID, userID string) error {
	var n int
	if err := e.d.QueryRow(ctx, `SELECT count(*) FROM enterprise_agents WHERE enterprise_id = ? AND user_id = ?`, enterpriseID, userID).Scan(&n); err != nil {
		return e.d.Err(err)
	}
	if n == 0 {
		return ErrNotAgent
	}
	return nil
}

// SwitchActing makes the person of session act for an enterprise they are
// an agent of, or for themself when enterpriseID is "". Tokens issued from
// the session then carry acting_for.
func (e *Enterprises) SwitchActing(ctx context.Context, sessions *Sessions, session *Session, enterpriseID string) error {
	if enterpriseID != "" {
		if err := e.CheckAgent(ctx, enterpriseID, session.UserID); err != nil {
			return err
		}
	}
	if err := sessions.SetActingFor(ctx, session.ID, enterpriseID); err != nil {
		return err
	}
	session.ActingFor = enterpriseID
	return nil
}
