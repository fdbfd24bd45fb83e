package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/govsso/sso/certs"
)

// parseLicenceField reads NAME[:LABEL[:FLAGS]], FLAGS a comma-separated
// list of "required" and "shareable".
func parseLicenceField(spec string) (certs.LicenceField, error) {
	parts := strings.SplitN(spec, ":", 3)
	f := certs.LicenceField{Name: parts[0]}
	if len(parts) > 1 {
		f.Label = parts[1]
	}
	if len(parts) > 2 {
		for _, flag := range strings.Split(parts[2], ",") {
			switch strings.TrimSpace(flag) {
			case "required":
				f.Required = true
			case "shareable":
				f.Shareable = true
			case "":
			default:
				return f, usageError{msg: fmt.Sprintf("--field %q: unknown flag %q (required, shareable)", spec, flag)}
			}
		}
	}
	if f.Name == "" {
		return f, usageError{msg: fmt.Sprintf("--field %q: the field needs a name", spec)}
	}
	return f, nil
}

func runLicenceTypeCreate(ctx context.Context, e env, args []string) error {
	f := newFlags("certs licence-type create", e)
	code := f.String("code", "", "type code: the defining body's unified social credit code and a 3-digit sequence (required)")
	name := f.String("name", "", "licence type name, e.g. 营业执照 (required)")
	body := f.String("defining-body", "", "unified social credit code of the body defining the type (default: the first 18 characters of --code)")
	var specs []string
	f.Var(listFlag{values: &specs}, "field", "a field every licence of the type carries: NAME[:LABEL[:required,shareable]] (repeat for several)")
	if err := f.parse(args); err != nil {
		return err
	}
	if *code == "" || *name == "" {
		return usageError{msg: "--code and --name are required"}
	}
	if len(f.args) > 0 {
		return usageError{msg: "usage: sso certs licence-type create --code C --name N [--defining-body CC] [--field SPEC]..."}
	}
	t := certs.LicenceType{TypeCode: strings.TrimSpace(*code), Name: *name, DefiningBodyCreditCode: *body}
	if t.DefiningBodyCreditCode == "" && len(t.TypeCode) >= 18 {
		t.DefiningBodyCreditCode = t.TypeCode[:18]
	}
	for _, s := range specs {
		lf, err := parseLicenceField(s)
		if err != nil {
			return err
		}
		t.Fields = append(t.Fields, lf)
	}
	a, err := openFromFlags(ctx, f, e, true)
	if err != nil {
		return err
	}
	defer a.close()
	s, err := certService(a)
	if err != nil {
		return err
	}
	created, err := certs.NewLicences(s, a.kek, certs.LicenceConfig{}).CreateLicenceTypeAs(ctx, "cli", t)
	if err != nil {
		return err
	}
	return printLicenceTypes(e, *f.json, []*certs.LicenceType{created})
}

func runLicenceTypeList(ctx context.Context, e env, args []string) error {
	f := newFlags("certs licence-type list", e)
	if err := f.parse(args); err != nil {
		return err
	}
	a, err := openFromFlags(ctx, f, e, true)
	if err != nil {
		return err
	}
	defer a.close()
	s, err := certService(a)
	if err != nil {
		return err
	}
	list, err := certs.NewLicences(s, a.kek, certs.LicenceConfig{}).LicenceTypes(ctx)
	if err != nil {
		return err
	}
	return printLicenceTypes(e, *f.json, list)
}

func printLicenceTypes(e env, asJSON bool, list []*certs.LicenceType) error {
	if list == nil {
		list = []*certs.LicenceType{}
	}
	return output(e.stdout, asJSON, list, []string{"TYPE CODE", "NAME", "DEFINING BODY", "FIELDS"}, func() [][]string {
		var rows [][]string
		for _, t := range list {
			var fs []string
			for _, f := range t.Fields {
				spec := f.Name
				var flags []string
				if f.Required {
					flags = append(flags, "required")
				}
				if f.Shareable {
					flags = append(flags, "shareable")
				}
				if len(flags) > 0 {
					spec += "(" + strings.Join(flags, ",") + ")"
				}
				fs = append(fs, spec)
			}
			rows = append(rows, []string{t.TypeCode, t.Name, t.DefiningBodyCreditCode, strings.Join(fs, " ")})
		}
		return rows
	})
}
