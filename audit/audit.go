// Package audit is the append-only, tamper-evident log of everything that
// happens to accounts, clients, keys and tokens. Each record carries the SM3
// hash of the record before it, so that editing or deleting a record breaks
// the chain, and Verify names the first broken record.
//
// Records are written in the caller's transaction (carried in the context),
// so a change and the record of it commit or roll back together. This package
// must not import any domain package.
package audit

import (
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emmansun/gmsm/sm3"
)

// Results of an action.
const (
	ResultSuccess = "success"
	ResultFailure = "failure"
)

// Actions are "domain.verb" strings; new ones are added where they are used.
const (
	ActionUserCreate     = "user.create"
	ActionUserDisable    = "user.disable"
	ActionUserEnable     = "user.enable"
	ActionClientCreate   = "client.create"
	ActionClientDelete   = "client.delete"
	ActionKeysRotate     = "keys.rotate"
	ActionBootstrapAdmin = "user.bootstrap_admin"
	ActionLogin          = "auth.login"
)

// Event is one audit record.
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
	PrevHash   string            `json:"prev_hash"`
	Hash       string            `json:"hash"`
}

// GenesisHash is the prev_hash of the first record.
var GenesisHash = strings.Repeat("0", 64)

// Field limits. An audit write must never fail because of what an attacker
// sent, so over-long text is cut and invalid UTF-8 replaced, not refused.
const (
	maxShort     = 256  // actor, subject, client, ip, action, result
	maxUserAgent = 512  // user agent
	maxReason    = 1000 // reason
	maxDetail    = 1000 // each detail value
	maxDetails   = 32   // number of detail entries
)

// clean makes e safe to store: valid UTF-8 and bounded lengths.
func clean(e Event) Event {
	e.Actor = clip(e.Actor, maxShort)
	e.Subject = clip(e.Subject, maxShort)
	e.ClientID = clip(e.ClientID, maxShort)
	e.IP = clip(e.IP, maxShort)
	e.Action = clip(e.Action, maxShort)
	e.Result = clip(e.Result, maxShort)
	e.UserAgent = clip(e.UserAgent, maxUserAgent)
	e.Reason = clip(e.Reason, maxReason)
	if len(e.Details) > 0 {
		d := make(map[string]string, min(len(e.Details), maxDetails))
		for k, v := range e.Details {
			if len(d) == maxDetails {
				break
			}
			d[clip(k, maxShort)] = clip(v, maxDetail)
		}
		e.Details = d
	} else {
		e.Details = nil // an empty map and no map must hash alike
	}
	return e
}

// clip replaces invalid UTF-8 and cuts s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// canonical is the exact byte sequence that is hashed: every field except
// seq and hash, in a fixed order, times in RFC 3339 with microseconds in UTC.
// encoding/json writes struct fields in order and sorts map keys, so the
// encoding is unambiguous and reproducible.
func canonical(e Event) []byte {
	b, _ := json.Marshal(struct {
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
	}{e.PrevHash, e.ID, e.OccurredAt.UTC().Format("2006-01-02T15:04:05.000000Z"), e.Actor, e.Subject, e.ClientID,
		e.IP, e.UserAgent, e.Action, e.Result, e.Reason, e.Details})
	return b
}

// hashOf is the SM3 hash of the record's canonical encoding, in hex.
func hashOf(e Event) string {
	sum := sm3.Sum(canonical(e))
	return hex.EncodeToString(sum[:])
}
