package oauth

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/kek"
)

// ClientStore keeps OAuth clients.
type ClientStore interface {
	// CreateClient validates c and stores it, setting its timestamps.
	CreateClient(ctx context.Context, c *Client) error
	// GetClient returns the client, or an error wrapping db.ErrNotFound.
	GetClient(ctx context.Context, id string) (*Client, error)
	// ListClients returns every client, ordered by id.
	ListClients(ctx context.Context) ([]*Client, error)
	// UpdateClient changes a client with fn under a row lock and re-validates it.
	UpdateClient(ctx context.Context, id string, fn func(*Client) error) (*Client, error)
	// DeleteClient removes a client and every token issued to it.
	DeleteClient(ctx context.Context, id string) error
}

// TokenKind says what a stored token row is.
type TokenKind string

// The artefacts of the OAuth and OpenID Connect flows, one row each.
const (
	// KindAuthorizeCode is an authorization code, used once.
	KindAuthorizeCode TokenKind = "authorize_code"
	// KindAccessToken is an access token.
	KindAccessToken TokenKind = "access_token"
	// KindRefreshToken is a refresh token.
	KindRefreshToken TokenKind = "refresh_token"
	// KindOpenIDSession is the request an ID token is minted from when a code is redeemed.
	KindOpenIDSession TokenKind = "oidc_session"
	// KindPKCE is the code challenge of an authorization code.
	KindPKCE TokenKind = "pkce"
	// KindPAR is a pushed authorization request (RFC 9126).
	KindPAR TokenKind = "par"
	// KindDeviceCode is a device code of the device authorization grant (RFC 8628).
	KindDeviceCode TokenKind = "device_code"
)

// Token is one stored artefact, keyed by kind and signature. The signature
// is the part of a token the server can recompute, never the token itself.
type Token struct {
	Kind        TokenKind
	Signature   string
	RequestID   string
	ClientID    string
	Subject     string
	SessionID   string
	Active      bool
	RequestedAt time.Time
	ExpiresAt   time.Time
	// FirstUsedAt is when the token was first redeemed; zero means never.
	FirstUsedAt time.Time
	// AccessSignature links a refresh token to the access token issued with it.
	AccessSignature string
	// Data is the serialized request, in clear in memory only: the store
	// seals it under the key-encryption key because it holds claims and
	// personal data.
	Data []byte
}

// TokenStore keeps tokens. Every call runs in the context's transaction, if any.
type TokenStore interface {
	// CreateToken stores t; an existing (kind, signature) is db.ErrConflict.
	CreateToken(ctx context.Context, t *Token) error
	// GetToken returns a token, active or not, or db.ErrNotFound.
	GetToken(ctx context.Context, kind TokenKind, signature string) (*Token, error)
	// CreateTokens stores several tokens with one statement.
	CreateTokens(ctx context.Context, ts []*Token) error
	// GetTokens returns those of refs that exist, with one query.
	GetTokens(ctx context.Context, refs []TokenRef) ([]*Token, error)
	// DeactivateToken marks an active token revoked, keeping the row so
	// reuse can be detected; an inactive or missing one is db.ErrNotFound.
	DeactivateToken(ctx context.Context, kind TokenKind, signature string) error
	// MarkTokenUsed deactivates a token, records the first time it was
	// used, and returns the access signature linked to it. A token that is
	// inactive, unless first used less than grace before at, or missing is
	// db.ErrNotFound.
	MarkTokenUsed(ctx context.Context, kind TokenKind, signature string, at time.Time, grace time.Duration) (string, error)
	// DeleteTokens removes those of refs that exist, with one statement.
	DeleteTokens(ctx context.Context, refs []TokenRef) error
	// DeleteToken removes a token.
	DeleteToken(ctx context.Context, kind TokenKind, signature string) error
	// DeactivateByRequestID deactivates the active tokens of one kind issued
	// for a request and returns how many it deactivated.
	DeactivateByRequestID(ctx context.Context, kind TokenKind, requestID string) (int64, error)
	// DeleteByRequestID removes the tokens of one kind issued for a request.
	DeleteByRequestID(ctx context.Context, kind TokenKind, requestID string) (int64, error)
	// DeleteBySubject removes every token of a user, for one client or, with
	// clientID "", for all clients.
	DeleteBySubject(ctx context.Context, subject, clientID string) (int64, error)
	// PurgeExpired removes at most limit tokens that expired before before.
	PurgeExpired(ctx context.Context, before time.Time, limit int) (int64, error)
}

// TokenRef names one token row.
type TokenRef struct {
	Kind      TokenKind
	Signature string
}

// SQLStore is the ClientStore and TokenStore on SQLite or PostgreSQL.
type SQLStore struct {
	db  *db.DB
	kek *kek.KEK
}

var (
	_ ClientStore = (*SQLStore)(nil)
	_ TokenStore  = (*SQLStore)(nil)
)

// NewSQLStore returns a store on d that seals token data under k.
func NewSQLStore(d *db.DB, k *kek.KEK) *SQLStore {
	return &SQLStore{db: d, kek: k}
}

// now is the current time at the precision both databases keep, so that
// what a caller holds equals what it reads back.
func now() time.Time { return dbTime(time.Now()) }

func dbTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// clientMetadata is the part of a Client kept in the JSON metadata column,
// so that new protocol metadata needs no migration.
type clientMetadata struct {
	RedirectURIs             []string        `json:"redirect_uris"`
	GrantTypes               []string        `json:"grant_types"`
	ResponseTypes            []string        `json:"response_types"`
	Scopes                   []string        `json:"scopes"`
	Audience                 []string        `json:"audience"`
	PostLogoutRedirectURIs   []string        `json:"post_logout_redirect_uris"`
	TokenEndpointAuthMethod  string          `json:"token_endpoint_auth_method"`
	JWKSURI                  string          `json:"jwks_uri,omitempty"`
	JWKS                     json.RawMessage `json:"jwks,omitempty"`
	BackchannelLogoutURI     string          `json:"backchannel_logout_uri,omitempty"`
	FrontchannelLogoutURI    string          `json:"frontchannel_logout_uri,omitempty"`
	FirstParty               bool            `json:"first_party,omitempty"`
	LogoURI                  string          `json:"logo_uri,omitempty"`
	AccessTokenFormat        string          `json:"access_token_format"`
	IDTokenSignedResponseAlg string          `json:"id_token_signed_response_alg"`
	SubjectType              string          `json:"subject_type"`
	SectorIdentifierURI      string          `json:"sector_identifier_uri,omitempty"`
	RequirePKCE              bool            `json:"require_pkce,omitempty"`
	RequirePAR               bool            `json:"require_par,omitempty"`
	AllowIntrospection       bool            `json:"allow_introspection,omitempty"`
}

func encodeMetadata(c *Client) (string, error) {
	b, err := json.Marshal(clientMetadata{
		RedirectURIs:             c.RedirectURIs,
		GrantTypes:               c.GrantTypes,
		ResponseTypes:            c.ResponseTypes,
		Scopes:                   c.Scopes,
		Audience:                 c.Audience,
		PostLogoutRedirectURIs:   c.PostLogoutRedirectURIs,
		TokenEndpointAuthMethod:  c.TokenEndpointAuthMethod,
		JWKSURI:                  c.JWKSURI,
		JWKS:                     c.JWKS,
		BackchannelLogoutURI:     c.BackchannelLogoutURI,
		FrontchannelLogoutURI:    c.FrontchannelLogoutURI,
		FirstParty:               c.FirstParty,
		LogoURI:                  c.LogoURI,
		AccessTokenFormat:        c.AccessTokenFormat,
		IDTokenSignedResponseAlg: c.IDTokenSignedResponseAlg,
		SubjectType:              c.SubjectType,
		SectorIdentifierURI:      c.SectorIdentifierURI,
		RequirePKCE:              c.RequirePKCE,
		RequirePAR:               c.RequirePAR,
		AllowIntrospection:       c.AllowIntrospection,
	})
	if err != nil {
		return "", fmt.Errorf("encode metadata of client %q: %w", c.ID, err)
	}
	return string(b), nil
}

func decodeMetadata(c *Client, raw string) error {
	var m clientMetadata
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		return fmt.Errorf("decode metadata of client %q: %w", c.ID, err)
	}
	c.RedirectURIs = m.RedirectURIs
	c.GrantTypes = m.GrantTypes
	c.ResponseTypes = m.ResponseTypes
	c.Scopes = m.Scopes
	c.Audience = m.Audience
	c.PostLogoutRedirectURIs = m.PostLogoutRedirectURIs
	c.TokenEndpointAuthMethod = m.TokenEndpointAuthMethod
	c.JWKSURI = m.JWKSURI
	c.JWKS = m.JWKS
	c.BackchannelLogoutURI = m.BackchannelLogoutURI
	c.FrontchannelLogoutURI = m.FrontchannelLogoutURI
	c.FirstParty = m.FirstParty
	c.LogoURI = m.LogoURI
	c.AccessTokenFormat = m.AccessTokenFormat
	c.IDTokenSignedResponseAlg = m.IDTokenSignedResponseAlg
	c.SubjectType = m.SubjectType
	c.SectorIdentifierURI = m.SectorIdentifierURI
	c.RequirePKCE = m.RequirePKCE
	c.RequirePAR = m.RequirePAR
	c.AllowIntrospection = m.AllowIntrospection
	return nil
}

// nullBytes stores an empty secret hash as NULL, which reads back as nil.
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// ClientInvalidation is the kind of cache invalidation (db.Invalidate) sent
// when a client is created, changed or deleted; nodes drop it from their
// client caches.
const ClientInvalidation = "client"

const clientColumns = `id, name, secret_hash, public, disabled, metadata, created_at, updated_at, org_unit_id, previous_secret_hash, previous_secret_expires_at`

// CreateClient validates c and inserts it; a taken id is db.ErrConflict. It
// does not apply defaults: call ApplyDefaults first. On success c's
// timestamps are set to the time of creation.
func (s *SQLStore) CreateClient(ctx context.Context, c *Client) error {
	if err := c.Validate(); err != nil {
		return err
	}
	meta, err := encodeMetadata(c)
	if err != nil {
		return err
	}
	t := now()
	err = s.db.InTx(ctx, func(ctx context.Context) error {
		if _, err := s.db.Exec(ctx, `INSERT INTO clients (`+clientColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			c.ID, c.Name, nullBytes(c.SecretHash), c.Public, c.Disabled, meta, t, t,
			c.OrgUnitID, nullBytes(c.PreviousSecretHash), nullTime(c.PreviousSecretExpiresAt)); err != nil {
			return err
		}
		return s.db.Invalidate(ctx, ClientInvalidation, c.ID)
	})
	if errors.Is(err, db.ErrConflict) {
		// db.ErrConflict reads "already exists".
		return fmt.Errorf("client %q %w", c.ID, db.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("create client %q: %w", c.ID, err)
	}
	c.CreatedAt, c.UpdatedAt = t, t
	return nil
}

// GetClient returns the client with the given id.
func (s *SQLStore) GetClient(ctx context.Context, id string) (*Client, error) {
	c, err := s.getClient(ctx, id, "")
	if err != nil {
		return nil, fmt.Errorf("client %q: %w", id, err)
	}
	return c, nil
}

func (s *SQLStore) getClient(ctx context.Context, id, lock string) (*Client, error) {
	row := s.db.QueryRow(ctx, `SELECT `+clientColumns+` FROM clients WHERE id = ?`+lock, id)
	return scanClient(s.db, row)
}

// ListClients returns every client ordered by id. Clients are registered by
// administrators, a few hundred at most, so there is no paging.
func (s *SQLStore) ListClients(ctx context.Context) ([]*Client, error) {
	rows, err := s.db.Query(ctx, `SELECT `+clientColumns+` FROM clients ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	defer rows.Close()
	var out []*Client
	for rows.Next() {
		c, err := scanClient(s.db, rows)
		if err != nil {
			return nil, fmt.Errorf("list clients: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list clients: %w", s.db.Err(err))
	}
	return out, nil
}

// scanner is what *sql.Row and *sql.Rows have in common.
type scanner interface{ Scan(dest ...any) error }

func scanClient(d *db.DB, row scanner) (*Client, error) {
	var c Client
	var meta string
	var prevExpires sql.NullTime
	if err := row.Scan(&c.ID, &c.Name, &c.SecretHash, &c.Public, &c.Disabled, &meta, &c.CreatedAt, &c.UpdatedAt,
		&c.OrgUnitID, &c.PreviousSecretHash, &prevExpires); err != nil {
		return nil, d.Err(err)
	}
	if len(c.SecretHash) == 0 {
		c.SecretHash = nil
	}
	if len(c.PreviousSecretHash) == 0 {
		c.PreviousSecretHash = nil
	}
	if prevExpires.Valid {
		c.PreviousSecretExpiresAt = prevExpires.Time.UTC()
	}
	c.CreatedAt, c.UpdatedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC()
	if err := decodeMetadata(&c, meta); err != nil {
		return nil, err
	}
	return &c, nil
}

// UpdateClient reads the client under a row lock, lets fn change it,
// re-validates and writes it back, all in one transaction. If fn or
// validation fails nothing is written. The id and creation time cannot change.
func (s *SQLStore) UpdateClient(ctx context.Context, id string, fn func(*Client) error) (*Client, error) {
	var out *Client
	err := s.db.InTx(ctx, func(ctx context.Context) error {
		c, err := s.getClient(ctx, id, s.db.ForUpdate())
		if err != nil {
			return fmt.Errorf("client %q: %w", id, err)
		}
		created := c.CreatedAt
		if err := fn(c); err != nil {
			return err
		}
		if c.ID != id {
			return &ValidationError{Fields: []FieldError{{Field: "id", Reason: "cannot be changed"}}}
		}
		if err := c.Validate(); err != nil {
			return err
		}
		meta, err := encodeMetadata(c)
		if err != nil {
			return err
		}
		c.CreatedAt, c.UpdatedAt = created, now()
		if err := s.db.ExecOne(ctx, `UPDATE clients SET name = ?, secret_hash = ?, public = ?, disabled = ?, metadata = ?, updated_at = ?,
			org_unit_id = ?, previous_secret_hash = ?, previous_secret_expires_at = ? WHERE id = ?`,
			c.Name, nullBytes(c.SecretHash), c.Public, c.Disabled, meta, c.UpdatedAt,
			c.OrgUnitID, nullBytes(c.PreviousSecretHash), nullTime(c.PreviousSecretExpiresAt), id); err != nil {
			return fmt.Errorf("update client %q: %w", id, err)
		}
		if err := s.db.Invalidate(ctx, ClientInvalidation, id); err != nil {
			return err
		}
		out = c
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteClient removes a client and, in the same transaction, every token
// issued to it, so that a deleted client leaves no usable token behind.
func (s *SQLStore) DeleteClient(ctx context.Context, id string) error {
	return s.db.InTx(ctx, func(ctx context.Context) error {
		if err := s.db.ExecOne(ctx, `DELETE FROM clients WHERE id = ?`, id); err != nil {
			return fmt.Errorf("delete client %q: %w", id, err)
		}
		if _, err := s.db.Exec(ctx, `DELETE FROM oauth_tokens WHERE client_id = ?`, id); err != nil {
			return fmt.Errorf("delete tokens of client %q: %w", id, err)
		}
		return s.db.Invalidate(ctx, ClientInvalidation, id)
	})
}

// tokenAAD binds sealed data to its row, so it cannot be moved to another token.
func tokenAAD(kind TokenKind, signature string) []byte {
	return []byte(string(kind) + ":" + signature)
}

// nullTime stores a zero time as NULL.
func nullTime(t time.Time) sql.NullTime {
	return sql.NullTime{Time: dbTime(t), Valid: !t.IsZero()}
}

// CreateToken seals t.Data and inserts the token. Error messages never
// include the signature.
func (s *SQLStore) CreateToken(ctx context.Context, t *Token) error {
	return s.CreateTokens(ctx, []*Token{t})
}

// tokenColumns are the columns of oauth_tokens, in the order scanToken reads.
const tokenColumns = `kind, signature, request_id, client_id, subject, session_id, active, requested_at, expires_at,
	first_used_at, access_signature, data`

// CreateTokens seals each token's data and inserts them all with one
// statement: an authorization writes three rows and a code exchange two,
// and each round trip to PostgreSQL costs more than the rows do.
func (s *SQLStore) CreateTokens(ctx context.Context, ts []*Token) error {
	if len(ts) == 0 {
		return nil
	}
	var q strings.Builder
	q.WriteString(`INSERT INTO oauth_tokens (` + tokenColumns + `) VALUES `)
	args := make([]any, 0, 12*len(ts))
	for i, t := range ts {
		if t.Kind == "" || t.Signature == "" {
			return errors.New("create token: kind and signature are required")
		}
		sealed, err := s.kek.Seal(t.Data, tokenAAD(t.Kind, t.Signature))
		if err != nil {
			return fmt.Errorf("create %s: seal data: %w", t.Kind, err)
		}
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString(`(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		args = append(args, string(t.Kind), t.Signature, t.RequestID, t.ClientID, t.Subject, t.SessionID,
			t.Active, dbTime(t.RequestedAt), dbTime(t.ExpiresAt), nullTime(t.FirstUsedAt), t.AccessSignature, sealed)
	}
	_, err := s.db.Exec(ctx, q.String(), args...)
	if errors.Is(err, db.ErrConflict) {
		// db.ErrConflict reads "already exists"; the driver's message is
		// dropped because PostgreSQL's may quote the key.
		return fmt.Errorf("%s %w", kindsOf(ts), db.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", kindsOf(ts), err)
	}
	return nil
}

// kindsOf names the kinds of ts for an error message.
func kindsOf(ts []*Token) string {
	var kinds []string
	for _, t := range ts {
		if !slices.Contains(kinds, string(t.Kind)) {
			kinds = append(kinds, string(t.Kind))
		}
	}
	return strings.Join(kinds, "+")
}

// GetToken reads a token, active or not (callers detect reuse of a
// deactivated one), and opens its data.
func (s *SQLStore) GetToken(ctx context.Context, kind TokenKind, signature string) (*Token, error) {
	t, err := s.scanToken(s.db.QueryRow(ctx, `SELECT `+tokenColumns+` FROM oauth_tokens WHERE kind = ? AND signature = ?`,
		string(kind), signature))
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", kind, err)
	}
	return t, nil
}

// GetTokens reads the tokens of refs that exist, in no particular order.
func (s *SQLStore) GetTokens(ctx context.Context, refs []TokenRef) ([]*Token, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	where, args := refsWhere(refs)
	rows, err := s.db.Query(ctx, `SELECT `+tokenColumns+` FROM oauth_tokens WHERE `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("get tokens: %w", err)
	}
	defer rows.Close()
	var out []*Token
	for rows.Next() {
		t, err := s.scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("get tokens: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("get tokens: %w", s.db.Err(err))
	}
	return out, nil
}

// refsWhere is the condition matching exactly refs.
func refsWhere(refs []TokenRef) (string, []any) {
	conds := make([]string, len(refs))
	args := make([]any, 0, 2*len(refs))
	for i, r := range refs {
		conds[i] = `(kind = ? AND signature = ?)`
		args = append(args, string(r.Kind), r.Signature)
	}
	return strings.Join(conds, " OR "), args
}

// scanToken reads one row of tokenColumns and opens its data.
func (s *SQLStore) scanToken(row interface{ Scan(...any) error }) (*Token, error) {
	var t Token
	var kind string
	var firstUsed sql.NullTime
	var sealed []byte
	err := row.Scan(&kind, &t.Signature, &t.RequestID, &t.ClientID, &t.Subject, &t.SessionID, &t.Active, &t.RequestedAt,
		&t.ExpiresAt, &firstUsed, &t.AccessSignature, &sealed)
	if err != nil {
		return nil, s.db.Err(err)
	}
	t.Kind = TokenKind(kind)
	t.RequestedAt, t.ExpiresAt = t.RequestedAt.UTC(), t.ExpiresAt.UTC()
	if firstUsed.Valid {
		t.FirstUsedAt = firstUsed.Time.UTC()
	}
	if t.Data, err = s.kek.Open(sealed, tokenAAD(t.Kind, t.Signature)); err != nil {
		return nil, fmt.Errorf("open data: %w", err)
	}
	return &t, nil
}

// DeactivateToken sets active to false once: of two concurrent redemptions
// of one authorization code, the second waits for the first's row lock and
// then finds nothing to update.
func (s *SQLStore) DeactivateToken(ctx context.Context, kind TokenKind, signature string) error {
	err := s.db.ExecOne(ctx, `UPDATE oauth_tokens SET active = FALSE WHERE kind = ? AND signature = ? AND active = TRUE`, string(kind), signature)
	if err != nil {
		return fmt.Errorf("deactivate %s: %w", kind, err)
	}
	return nil
}

// MarkTokenUsed deactivates the token and sets first_used_at unless it is
// already set, so that the first redemption time survives replays.
// It returns the linked access signature, which a refresh rotation
// deletes, so that the rotation needs no read first. The condition on
// active is what makes two concurrent rotations of one token safe: the
// second waits for the first's row lock and then matches no row, unless
// the grace period lets it through.
func (s *SQLStore) MarkTokenUsed(ctx context.Context, kind TokenKind, signature string, at time.Time, grace time.Duration) (string, error) {
	// Without grace only an active token: a time condition could let a
	// second rotation through when its clock was read before the first's.
	usable, args := `active = TRUE`, []any{dbTime(at), string(kind), signature}
	if grace > 0 {
		usable, args = `(active = TRUE OR first_used_at > ?)`, append(args, dbTime(at.Add(-grace)))
	}
	var access string
	err := s.db.Err(s.db.QueryRow(ctx, `UPDATE oauth_tokens SET active = FALSE, first_used_at = COALESCE(first_used_at, ?)
		WHERE kind = ? AND signature = ? AND `+usable+` RETURNING access_signature`, args...).Scan(&access))
	if err != nil {
		return "", fmt.Errorf("mark %s used: %w", kind, err)
	}
	return access, nil
}

// DeleteToken removes one token.
func (s *SQLStore) DeleteToken(ctx context.Context, kind TokenKind, signature string) error {
	if err := s.db.ExecOne(ctx, `DELETE FROM oauth_tokens WHERE kind = ? AND signature = ?`, string(kind), signature); err != nil {
		return fmt.Errorf("delete %s: %w", kind, err)
	}
	return nil
}

// DeleteTokens removes the tokens of refs that exist.
func (s *SQLStore) DeleteTokens(ctx context.Context, refs []TokenRef) error {
	if len(refs) == 0 {
		return nil
	}
	where, args := refsWhere(refs)
	if _, err := s.db.Exec(ctx, `DELETE FROM oauth_tokens WHERE `+where, args...); err != nil {
		return fmt.Errorf("delete tokens: %w", err)
	}
	return nil
}

// DeactivateByRequestID counts only tokens that were still active, so that a
// second revocation reports 0.
func (s *SQLStore) DeactivateByRequestID(ctx context.Context, kind TokenKind, requestID string) (int64, error) {
	n, err := s.execCount(ctx, `UPDATE oauth_tokens SET active = FALSE WHERE kind = ? AND request_id = ? AND active = TRUE`,
		string(kind), requestID)
	if err != nil {
		return 0, fmt.Errorf("deactivate %s of request: %w", kind, err)
	}
	return n, nil
}

// DeleteByRequestID removes the tokens of one kind issued for a request.
func (s *SQLStore) DeleteByRequestID(ctx context.Context, kind TokenKind, requestID string) (int64, error) {
	n, err := s.execCount(ctx, `DELETE FROM oauth_tokens WHERE kind = ? AND request_id = ?`, string(kind), requestID)
	if err != nil {
		return 0, fmt.Errorf("delete %s of request: %w", kind, err)
	}
	return n, nil
}

// DeleteBySubject refuses an empty subject: that would remove every token
// issued without a user (client credentials) instead of one user's.
func (s *SQLStore) DeleteBySubject(ctx context.Context, subject, clientID string) (int64, error) {
	if subject == "" {
		return 0, errors.New("delete tokens by subject: subject is required")
	}
	query, args := `DELETE FROM oauth_tokens WHERE subject = ?`, []any{subject}
	if clientID != "" {
		query, args = query+` AND client_id = ?`, append(args, clientID)
	}
	n, err := s.execCount(ctx, query, args...)
	if err != nil {
		return 0, fmt.Errorf("delete tokens of subject: %w", err)
	}
	return n, nil
}

// PurgeExpired deletes one bounded batch, so that it never holds a long
// lock; callers repeat while it returns limit.
func (s *SQLStore) PurgeExpired(ctx context.Context, before time.Time, limit int) (int64, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("purge expired tokens: limit must be positive, got %d", limit)
	}
	n, err := s.execCount(ctx, `DELETE FROM oauth_tokens WHERE (kind, signature) IN
		(SELECT kind, signature FROM oauth_tokens WHERE expires_at < ? LIMIT ?)`, dbTime(before), limit)
	if err != nil {
		return 0, fmt.Errorf("purge expired tokens: %w", err)
	}
	return n, nil
}

func (s *SQLStore) execCount(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := s.db.Exec(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
