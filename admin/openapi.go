package admin

import (
	"net/http"
	"regexp"
	"strings"

	"github.com/govsso/sso/users"
)

// openAPIDocument describes the API from the same route table the mux is
// built from, so the two cannot drift apart.
func (api *API) openAPIDocument() map[string]any {
	paths := map[string]map[string]any{}
	for _, rt := range api.routes() {
		p := paths[rt.path]
		if p == nil {
			p = map[string]any{}
			paths[rt.path] = p
		}
		op := map[string]any{
			"summary":     rt.summary,
			"operationId": operationID(rt),
			"responses": map[string]any{
				"default": map[string]any{"description": "An RFC 9457 problem",
					"content": map[string]any{"application/problem+json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Problem"}}}},
				okStatus(rt): map[string]any{"description": "Success"},
			},
		}
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(rt.path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		if params != nil {
			op["parameters"] = params
		}
		if rt.method == http.MethodPost || rt.method == http.MethodPatch || rt.method == http.MethodPut {
			op["requestBody"] = map[string]any{"content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"type": "object"}}}}
		}
		switch rt.path {
		case "/users:import":
			importOperation(op)
		case "/org-units/{id}/members/{user_id}":
			if rt.method == http.MethodPut {
				memberOperation(op)
			}
		case "/org-units/{id}/members":
			op["parameters"] = append(params,
				map[string]any{"name": "subtree", "in": "query", "description": "the members of every unit of the subtree", "schema": map[string]any{"type": "boolean", "default": false}},
				map[string]any{"name": "after", "in": "query", "description": "the next cursor of the previous page", "schema": map[string]any{"type": "string"}},
				map[string]any{"name": "limit", "in": "query", "schema": map[string]any{"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}})
		}
		p[strings.ToLower(rt.method)] = op
	}
	paths["/openapi.json"] = map[string]any{"get": map[string]any{"summary": "This document", "operationId": "getOpenAPI", "security": []any{},
		"responses": map[string]any{"200": map[string]any{"description": "The OpenAPI document"}}}}
	return map[string]any{
		"openapi": "3.0.3",
		"info":    map[string]any{"title": "sso admin API", "version": "1"},
		"servers": []any{map[string]any{"url": Prefix}},
		"paths":   paths,
		"security": []any{
			map[string]any{"bearer": []string{AdminScope}},
			map[string]any{"session": []string{}},
		},
		"components": map[string]any{
			"securitySchemes": map[string]any{
				"bearer":  map[string]any{"type": "http", "scheme": "bearer", "description": "An access token carrying the admin scope"},
				"session": map[string]any{"type": "apiKey", "in": "cookie", "name": "sso_session", "description": "A signed-in administrator; unsafe methods also need the X-CSRF-Token header equal to the sso_csrf cookie"},
			},
			"schemas": map[string]any{
				"Problem": map[string]any{"type": "object", "properties": map[string]any{
					"type": map[string]any{"type": "string"}, "title": map[string]any{"type": "string"}, "status": map[string]any{"type": "integer"},
					"detail": map[string]any{"type": "string"},
					"errors": map[string]any{"type": "array", "items": map[string]any{"type": "object", "properties": map[string]any{
						"field": map[string]any{"type": "string"}, "reason": map[string]any{"type": "string"}}}},
				}},
			},
		},
	}
}

// importOperation describes the CSV body, query and report of the import.
func importOperation(op map[string]any) {
	op["requestBody"] = map[string]any{"required": true, "content": map[string]any{"text/csv": map[string]any{"schema": map[string]any{"type": "string",
		"description": "A header row naming some of the columns " + strings.Join(users.ImportColumns, ", ") + " (username and kind required), then one row per account. No passwords: imported accounts set theirs through password reset."}}}}
	boolean := map[string]any{"type": "boolean", "default": false}
	op["parameters"] = []any{
		map[string]any{"name": "encoding", "in": "query", "schema": map[string]any{"type": "string", "enum": []string{"utf8", "gbk"}, "default": "utf8"}},
		map[string]any{"name": "dry_run", "in": "query", "description": "validate every row, write nothing", "schema": boolean},
		map[string]any{"name": "all_or_nothing", "in": "query", "description": "one transaction: any rejected row and nothing is written (422)", "schema": boolean},
	}
	rowError := map[string]any{"type": "object", "properties": map[string]any{
		"line": map[string]any{"type": "integer"}, "column": map[string]any{"type": "string"}, "reason": map[string]any{"type": "string"}}}
	report := map[string]any{"type": "object", "properties": map[string]any{
		"dry_run": map[string]any{"type": "boolean"}, "all_or_nothing": map[string]any{"type": "boolean"},
		"rows": map[string]any{"type": "integer"}, "valid": map[string]any{"type": "integer"}, "imported": map[string]any{"type": "integer"},
		"rejected": map[string]any{"type": "integer"}, "aborted": map[string]any{"type": "boolean"},
		"errors": map[string]any{"type": "array", "items": rowError}}}
	responses := op["responses"].(map[string]any)
	responses["200"] = map[string]any{"description": "The report", "content": map[string]any{"application/json": map[string]any{"schema": report}}}
	responses["422"] = map[string]any{"description": "The report of an import refused in all-or-nothing mode, or stopped by a row that cannot be read", "content": map[string]any{"application/json": map[string]any{"schema": report}}}
}

// memberOperation describes the body and answers of putting a person in a
// unit.
func memberOperation(op map[string]any) {
	op["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": map[string]any{
		"type": "object", "required": []string{"role"}, "properties": map[string]any{
			"role": map[string]any{"type": "string", "enum": []string{"member", "admin", "auditor", "client_manager"}}}}}}}
	responses := op["responses"].(map[string]any)
	responses["200"] = map[string]any{"description": "The role was changed, or was already this one"}
	responses["201"] = map[string]any{"description": "The person was put in the unit"}
}

// pathParam finds the parameters of a path: {id}, {user_id}.
var pathParam = regexp.MustCompile(`\{([a-z_]+)\}`)

func okStatus(rt route) string {
	switch {
	case rt.method == http.MethodDelete && (strings.HasSuffix(rt.path, "/sessions") || strings.HasSuffix(rt.path, "/consents") || strings.Contains(rt.path, "/agents/") || strings.Contains(rt.path, "/sessions/")):
		return "200" // answers with what was revoked
	case rt.method == http.MethodDelete:
		return "204"
	case rt.method == http.MethodPost && strings.HasSuffix(rt.path, "/password-reset"):
		return "200"
	case rt.method == http.MethodPost && strings.HasSuffix(rt.path, "/agents"):
		return "200" // answers with the enterprise
	case rt.method == http.MethodPost && !strings.Contains(rt.path, ":"):
		return "201"
	}
	return "200"
}

// operationID is e.g. "post_users_id_disable".
func operationID(rt route) string {
	r := strings.NewReplacer("/", "_", "{", "", "}", "", ":", "_", "-", "_")
	return strings.ToLower(rt.method) + r.Replace(rt.path)
}

func (api *API) openAPI(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, api.openAPIDocument())
}
