package admin

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/server"
	"github.com/govsso/sso/users"
	"github.com/govsso/sso/webhooks"
)

// importUsers creates accounts from a CSV body (see users.Importer for the
// columns). The caller needs the right to create accounts in the unit of
// each row; rows outside it are rejected, the others imported. The body is
// read whole before any row is written, so that a body over the server's
// limit (SSO_HTTP_MAX_BODY_BYTES) is refused with nothing written; it is
// then parsed as a stream.
func (api *API) importUsers(w http.ResponseWriter, r *http.Request, a Actor) {
	if !a.Has(RoleSuperAdmin) && !a.Has(RoleOrgAdmin) {
		writeProblem(w, errForbidden)
		return
	}
	opts, p := parseImportQuery(r)
	if p != nil {
		writeProblem(w, p)
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "text/csv" {
		writeProblem(w, problem(http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type",
			"send the file as text/csv; name its encoding with ?encoding=utf8 or ?encoding=gbk"))
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		if server.IsBodyTooLarge(err) {
			api.writeError(w, r, err)
			return
		}
		writeProblem(w, problem(http.StatusBadRequest, "unreadable-body", "Unreadable body", "the request body could not be read"))
		return
	}
	opts.Allow = func(unit *users.OrgUnit) bool {
		t := Target{}
		if unit != nil {
			t.OrgPaths = []string{unit.Path}
		}
		return Allowed(a, ActionUserWrite, t)
	}
	opts.AllowRole = func(unit *users.OrgUnit, role string) bool { return MayGrant(a, unit.Path, role) }
	opts.OnCreated = webhooks.ImportHook(api.Webhooks)
	opts.Audit = audit.Event{Actor: a.Name(), ClientID: a.ClientID, IP: server.ClientIP(r), UserAgent: r.UserAgent()}
	rep, err := users.NewImporter(api.DB, api.Users, api.OrgUnits, api.Audit).Import(r.Context(), bytes.NewReader(body), opts)
	var fe *users.ImportFileError
	switch {
	case errors.As(err, &fe):
		p := problem(http.StatusBadRequest, "import-file", "Import file refused", fe.Reason+"; nothing was imported")
		if fe.Column != "" {
			p.Errors = []FieldError{{Field: fe.Column, Reason: fe.Reason}}
		}
		writeProblem(w, p)
		return
	case err != nil:
		api.writeError(w, r, err)
		return
	}
	status := http.StatusOK
	if rep.Aborted || (opts.AllOrNothing && rep.Rejected > 0) {
		status = http.StatusUnprocessableEntity // the report says which rows; see also "imported"
	}
	writeJSON(w, status, rep)
}

// parseImportQuery reads ?encoding=, ?dry_run= and ?all_or_nothing=.
func parseImportQuery(r *http.Request) (users.ImportOptions, *Problem) {
	q := r.URL.Query()
	var opts users.ImportOptions
	var fields []FieldError
	for key := range q {
		switch key {
		case "encoding", "dry_run", "all_or_nothing":
		default:
			fields = append(fields, FieldError{Field: key, Reason: "is not a known query parameter"})
		}
	}
	switch opts.Encoding = q.Get("encoding"); opts.Encoding {
	case "", "utf8", "gbk":
	default:
		fields = append(fields, FieldError{Field: "encoding", Reason: "must be utf8 or gbk"})
	}
	for _, b := range []struct {
		name string
		dst  *bool
	}{{"dry_run", &opts.DryRun}, {"all_or_nothing", &opts.AllOrNothing}} {
		if v := q.Get(b.name); v != "" {
			x, err := strconv.ParseBool(v)
			if err != nil {
				fields = append(fields, FieldError{Field: b.name, Reason: "must be true or false"})
			}
			*b.dst = x
		}
	}
	if len(fields) > 0 {
		return opts, validationProblem(fields)
	}
	return opts, nil
}
