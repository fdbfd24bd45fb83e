package admin

import (
	"encoding/csv"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/govsso/sso/audit"
)

// auditPage is a page of audit records; Next is the cursor for ?after=.
type auditPage struct {
	Items []audit.Event `json:"items"`
	Next  string        `json:"next,omitempty"`
}

// parseAuditFilter reads the query string of GET /audit, naming every bad
// parameter.
func parseAuditFilter(r *http.Request) (audit.Filter, bool, error) {
	q := r.URL.Query()
	f := audit.Filter{Actor: q.Get("actor"), Subject: q.Get("subject"), ClientID: q.Get("client_id"),
		Action: q.Get("action"), Result: q.Get("result"), Limit: audit.DefaultListLimit}
	var fields []FieldError
	bad := func(field, reason string) { fields = append(fields, FieldError{Field: field, Reason: reason}) }
	for key := range q {
		switch key {
		case "actor", "subject", "client_id", "action", "result", "since", "until", "after", "limit", "format":
		default:
			bad(key, "is not a known query parameter")
		}
	}
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(t.name); v != "" {
			parsed, err := time.Parse(time.RFC3339, v)
			if err != nil {
				bad(t.name, "must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
			}
			*t.dst = parsed.UTC()
		}
	}
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			bad("after", "must be the next cursor of a previous page")
		}
		f.AfterSeq = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > audit.MaxListLimit {
			bad("limit", "must be a whole number from 1 to 1000")
		}
		f.Limit = n
	}
	format := q.Get("format")
	if format != "" && format != "csv" && format != "json" {
		bad("format", "must be json or csv")
	}
	wantCSV := format == "csv" || (format == "" && strings.Contains(r.Header.Get("Accept"), "text/csv"))
	if len(fields) > 0 {
		return f, false, validationProblem(fields)
	}
	return f, wantCSV, nil
}

// listAudit answers one page as JSON, or the whole filtered log as CSV.
func (api *API) listAudit(w http.ResponseWriter, r *http.Request, a Actor) {
	if !require(w, a, ActionAuditRead, Target{}) {
		return
	}
	f, wantCSV, err := parseAuditFilter(r)
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	if wantCSV {
		api.exportAudit(w, r, f)
		return
	}
	list, err := api.Audit.List(r.Context(), f)
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	page := auditPage{Items: list}
	if len(list) == f.Limit {
		page.Next = strconv.FormatInt(list[len(list)-1].Seq, 10)
	}
	writeJSON(w, http.StatusOK, page)
}

// csvHeader names the exported columns.
var csvHeader = []string{"seq", "id", "occurred_at", "actor", "subject", "client_id", "ip", "user_agent", "action", "result", "reason", "details", "prev_hash", "hash"}

// exportAudit streams every matching record, page by page, from the
// filter's cursor on. An error after the first byte can only cut the file
// short, so it is logged.
func (api *API) exportAudit(w http.ResponseWriter, r *http.Request, f audit.Filter) {
	f.Limit = audit.MaxListLimit
	list, err := api.Audit.List(r.Context(), f)
	if err != nil {
		api.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="audit.csv"`)
	w.Header().Set("Cache-Control", "no-store")
	cw := csv.NewWriter(w)
	cw.Write(csvHeader)
	for len(list) > 0 {
		for _, e := range list {
			cw.Write(csvRow(e))
		}
		if len(list) < f.Limit {
			break
		}
		f.AfterSeq = list[len(list)-1].Seq
		if list, err = api.Audit.List(r.Context(), f); err != nil {
			api.log.ErrorContext(r.Context(), "audit export", "err", err)
			break
		}
	}
	cw.Flush()
}

func csvRow(e audit.Event) []string {
	details := make([]string, 0, len(e.Details))
	for k, v := range e.Details {
		details = append(details, k+"="+v)
	}
	slices.Sort(details)
	return []string{strconv.FormatInt(e.Seq, 10), e.ID, e.OccurredAt.UTC().Format(time.RFC3339Nano), csvSafe(e.Actor), csvSafe(e.Subject),
		csvSafe(e.ClientID), csvSafe(e.IP), csvSafe(e.UserAgent), csvSafe(e.Action), csvSafe(e.Result), csvSafe(e.Reason),
		csvSafe(strings.Join(details, ";")), e.PrevHash, e.Hash}
}

// csvSafe stops a spreadsheet from running a cell as a formula (CSV
// injection): a value starting with = + - @ gets a leading apostrophe.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
