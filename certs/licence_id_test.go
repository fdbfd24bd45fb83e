package certs

import (
	"errors"
	"strings"
	"testing"
)

// notesExample is the identifier given in the standards notes; its check character is U.
const notesExample = "1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.001.U"

func TestLicenceIdentifierNotesExample(t *testing.T) {
	got, err := LicenceIdentifier("11100000000013338W011", "11430000006122244L", "20230000403", "001")
	if err != nil {
		t.Fatal(err)
	}
	if got != notesExample {
		t.Fatalf("got %s, want %s", got, notesExample)
	}
	p, err := ParseLicenceIdentifier(notesExample)
	if err != nil {
		t.Fatal(err)
	}
	if p.Check != 'U' || p.Serial != "20230000403" || p.Version != "001" || p.String() != notesExample {
		t.Fatalf("parsed %+v", p)
	}
}

func TestParseLicenceIdentifierLowerCase(t *testing.T) {
	p, err := ParseLicenceIdentifier(strings.ToLower(notesExample))
	if err != nil {
		t.Fatal(err)
	}
	if p.String() != notesExample {
		t.Fatalf("got %s", p.String())
	}
}

func TestParseLicenceIdentifierInvalid(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"wrong check", strings.TrimSuffix(notesExample, "U") + "V", "check character is V"},
		{"wrong prefix", strings.Replace(notesExample, "3005.2.", "3005.3.", 1), "must start with"},
		{"bad version letters", strings.Replace(notesExample, ".001.", ".0A1.", 1), "version"},
		{"bad version length", strings.Replace(notesExample, ".001.", ".01.", 1), "version"},
		{"version zero", strings.Replace(notesExample, ".001.", ".000.", 1), "version"},
		{"unknown character in serial", strings.Replace(notesExample, "20230000403", "2023-000403", 1), "serial"},
		{"unknown check character", strings.TrimSuffix(notesExample, "U") + "*", "check character must be"},
		{"missing field", strings.Replace(notesExample, ".001.", ".", 1), "5 fields"},
		{"bad issuer check", strings.Replace(notesExample, "11430000006122244L", "11430000006122244M", 1), "issuer"},
		{"bad type code", strings.Replace(notesExample, "11100000000013338W011", "11100000000013338W01X", 1), "type code"},
		{"empty", "", "must start with"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseLicenceIdentifier(tc.in)
			if !errors.Is(err, ErrLicenceIdentifier) {
				t.Fatalf("err = %v, want ErrLicenceIdentifier", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %q, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestLicenceIdentifierRejectsBadFields(t *testing.T) {
	if _, err := LicenceIdentifier("11100000000013338W011", "11430000006122244L", "2023.1", "001"); !errors.Is(err, ErrLicenceIdentifier) {
		t.Fatalf("serial with a dot: err = %v", err)
	}
	if _, err := LicenceIdentifier("11100000000013338W011", "11430000006122244L", "1", "1"); !errors.Is(err, ErrLicenceIdentifier) {
		t.Fatalf("1-digit version: err = %v", err)
	}
}

// FuzzParseLicenceIdentifier checks that parsing never panics and that an
// accepted identifier is rebuilt to itself by LicenceIdentifier.
func FuzzParseLicenceIdentifier(f *testing.F) {
	f.Add(notesExample)
	f.Add(strings.TrimSuffix(notesExample, "U") + "V")
	f.Add("1.2.156.3005.2.....")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseLicenceIdentifier(s)
		if err != nil {
			return
		}
		again, err := LicenceIdentifier(p.TypeCode, p.IssuerCreditCode, p.Serial, p.Version)
		if err != nil || again != p.String() {
			t.Fatalf("%q parsed to %+v, rebuilt as %q (%v)", s, p, again, err)
		}
	})
}
