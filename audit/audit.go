package audit

import (
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/emmansun/gmsm/sm3"
)

// Results of an action.
const (
	ResultSuccess = "success"
	ResultFailure = "failure"
)

// Actions are "domain.verb" strings, so that a filter on the domain prefix
// finds everything that happened to one kind of thing. New ones are added
// here when a domain starts writing them.
const (
	// ActionUserCreate: an account was created (CLI or admin API).
	ActionUserCreate = "user.create"
	// ActionUserDisable: an account was disabled; its sessions end.
	ActionUserDisable = "user.disable"
	// ActionUserEnable: a disabled account was enabled again.
	ActionUserEnable = "user.enable"
	// ActionBootstrapAdmin: the first administrator was created at start-up.
	ActionBootstrapAdmin = "user.bootstrap_admin"
	// ActionClientCreate: an OAuth client was registered.
	ActionClientCreate = "client.create"
	// ActionClientDelete: an OAuth client was removed.
	ActionClientDelete = "client.delete"
	// ActionKeysRotate: a new signing key became active.
	ActionKeysRotate = "keys.rotate"
	// ActionArchive: retention moved old records into an archive file.
	ActionArchive = "audit.archive"
	// ActionLogin: a sign-in attempt, successful or not.
	ActionLogin = "auth.login"
	// ActionOAuthAuthorize: a user granted a client an authorization code.
	ActionOAuthAuthorize = "oauth.authorize"
	// ActionOAuthToken: the token endpoint issued tokens.
	ActionOAuthToken = "oauth.token"
	// ActionOAuthRevoke: a client revoked a token.
	ActionOAuthRevoke = "oauth.revoke"
)

// Event is one audit record. Append sets Seq (and ID and OccurredAt when
// left empty); Seal sets ChainPos, PrevHash and Hash.
type Event struct {
	Seq        int64             `json:"seq"`
	ID         string            `json:"id"`
	OccurredAt time.Time         `json:"occurred_at"`
	Actor      string            `json:"actor"`
	Subject    string            `json:"subject"`
	ClientID   string            `json:"client_id"`
	IP         string            `json:"ip"`
	UserAgent  string            `json:"user_agent"`
	Action     string            `json:"action"`
	Result     string            `json:"result"`
	Reason     string            `json:"reason"`
	Details    map[string]string `json:"details,omitempty"`
	// ChainPos, PrevHash and Hash are set when the record is sealed into the
	// chain, shortly after it is written (0 and "" until then).
	ChainPos int64  `json:"chain_pos,omitempty"`
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
}

// GenesisHash is the prev_hash of the first record.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// Field limits in bytes (see the package comment: cut, never refused).
const (
	maxShort     = 256  // id, actor, subject, client, ip, action, result, detail keys
	maxUserAgent = 512  // user agent
	maxReason    = 1000 // reason
	maxDetail    = 1000 // each detail value
	maxDetails   = 32   // number of detail entries
)

// clean makes e safe to store and to hash: valid UTF-8 without control
// characters, and bounded lengths.
func clean(e Event) Event {
	e.ID = clip(e.ID, maxShort)
	e.Actor = clip(e.Actor, maxShort)
	e.Subject = clip(e.Subject, maxShort)
	e.ClientID = clip(e.ClientID, maxShort)
	e.IP = clip(e.IP, maxShort)
	e.Action = clip(e.Action, maxShort)
	e.Result = clip(e.Result, maxShort)
	e.UserAgent = clip(e.UserAgent, maxUserAgent)
	e.Reason = clip(e.Reason, maxReason)
	e.Details = cleanDetails(e.Details)
	return e
}

// cleanDetails keeps the first maxDetails entries in key order, so that the
// same input always yields the same record. An empty map becomes nil: both
// are stored as "{}" and must hash alike.
func cleanDetails(in map[string]string) map[string]string {
	if len(in) == 0 {
		return nil
	}
	keys := make([]string, 0, len(in))
	for k := range in {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make(map[string]string, min(len(in), maxDetails))
	for _, k := range keys {
		if len(out) == maxDetails {
			break
		}
		ck := clip(k, maxShort)
		if _, dup := out[ck]; !dup { // two long keys may clip alike
			out[ck] = clip(in[k], maxDetail)
		}
	}
	return out
}

// clip replaces invalid UTF-8 and control characters with U+FFFD and cuts s
// to at most n bytes on a character boundary.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) && r != '\t' && r != '\n' {
			return utf8.RuneError
		}
		return r
	}, s)
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// timeLayout is RFC 3339 in UTC with exactly microsecond precision, the
// precision both databases store, so a stored record rehashes identically.
const timeLayout = "2006-01-02T15:04:05.000000Z"

// canonicalRecord fixes the order and names of the hashed fields.
type canonicalRecord struct {
	PrevHash   string            `json:"prev_hash"`
	ID         string            `json:"id"`
	OccurredAt string            `json:"occurred_at"`
	Actor      string            `json:"actor"`
	Subject    string            `json:"subject"`
	ClientID   string            `json:"client_id"`
	IP         string            `json:"ip"`
	UserAgent  string            `json:"user_agent"`
	Action     string            `json:"action"`
	Result     string            `json:"result"`
	Reason     string            `json:"reason"`
	Details    map[string]string `json:"details"`
}

// canonical is the exact byte sequence that is hashed (documented in the
// package comment). encoding/json writes struct fields in order, quotes and
// escapes every string and sorts map keys, so no two records share it.
func canonical(e Event) []byte {
	b, err := json.Marshal(canonicalRecord{
		PrevHash: e.PrevHash, ID: e.ID, OccurredAt: e.OccurredAt.UTC().Format(timeLayout),
		Actor: e.Actor, Subject: e.Subject, ClientID: e.ClientID, IP: e.IP, UserAgent: e.UserAgent,
		Action: e.Action, Result: e.Result, Reason: e.Reason, Details: e.Details,
	})
	if err != nil {
		// Only strings and a map of strings: Marshal cannot fail.
		panic("audit: canonical encoding: " + err.Error())
	}
	return b
}

// hashOf is the SM3 hash of the record's canonical encoding, in hex.
func hashOf(e Event) string {
	sum := sm3.Sum(canonical(e))
	return hex.EncodeToString(sum[:])
}
