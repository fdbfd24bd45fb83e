package certs

import (
	"context"
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/govsso/sso/audit"
)

// ErrLicenceTypeExists means a type with the code is already registered;
// a type is never replaced, since issued licences carry its fields.
var ErrLicenceTypeExists = errors.New("certs: licence type exists")

// Limits of a licence type's text, in characters.
const (
	MaxLicenceTypeName = 128
	MaxFieldName       = 64
	MaxFieldLabel      = 128
)

// checkLicenceType bounds a type's free text and field count.
func checkLicenceType(t LicenceType) error {
	bad := func(v string, limit int) bool {
		return !utf8.ValidString(v) || utf8.RuneCountInString(v) > limit || strings.ContainsFunc(v, unicode.IsControl)
	}
	if bad(t.Name, MaxLicenceTypeName) {
		return wrapInvalid("name must be valid UTF-8 text of at most %d characters without control characters", MaxLicenceTypeName)
	}
	if len(t.Fields) > MaxLicenceFields {
		return wrapInvalid("a licence type has at most %d fields", MaxLicenceFields)
	}
	for _, f := range t.Fields {
		if bad(f.Name, MaxFieldName) || strings.ContainsAny(f.Name, " :,") {
			return wrapInvalid("field name %q must be at most %d characters without spaces, colons, commas or control characters", f.Name, MaxFieldName)
		}
		if bad(f.Label, MaxFieldLabel) {
			return wrapInvalid("label of field %q must be at most %d characters without control characters", f.Name, MaxFieldLabel)
		}
	}
	return nil
}

// LicenceTypes lists the registered types by code.
func (l *Licences) LicenceTypes(ctx context.Context) ([]*LicenceType, error) {
	return l.store.listTypes(ctx)
}

// auditAs records an action by a named actor in the caller's transaction.
func (l *Licences) auditAs(ctx context.Context, actor, action, subject string, details map[string]string) error {
	if l.ca.cfg.Audit == nil {
		return nil
	}
	_, err := l.ca.cfg.Audit.Append(ctx, audit.Event{Actor: actor, Action: action, Subject: subject,
		Result: audit.ResultSuccess, Details: details})
	return err
}
