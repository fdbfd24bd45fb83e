package users

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizeUsername(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"Alice", "alice", true},
		{"  bob.smith_1 ", "bob.smith_1", true},
		{"ab", "", false},
		{strings.Repeat("a", 65), "", false},
		{"-dash", "", false},
		{"has space", "", false},
		{"张三", "", false},
		{"13812345678", "", false},
		{"11010519491231002x", "", false},
		{"bad\xffutf8", "", false},
	}
	for _, tc := range tests {
		got, err := NormalizeUsername(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("NormalizeUsername(%q) = %q, %v", tc.in, got, err)
		}
	}
}

func TestNormalizePhone(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"13812345678", "13812345678", true},
		{"+86 138-1234-5678", "13812345678", true},
		{"0086 13812345678", "13812345678", true},
		{"23812345678", "", false},
		{"1381234567", "", false},
		{"138123456789", "", false},
		{"1381234567a", "", false},
		{"", "", false},
	}
	for _, tc := range tests {
		got, err := NormalizePhone(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("NormalizePhone(%q) = %q, %v", tc.in, got, err)
		}
	}
	if MaskPhone("13812345678") != "138****5678" {
		t.Fatal(MaskPhone("13812345678"))
	}
}

func TestNormalizeEmail(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"", "", true},
		{" Li.Na@Example.ORG ", "li.na@example.org", true},
		{"no-at-sign", "", false},
		{"Li Na <li@example.org>", "", false},
		{"a@b@example.org", "", false},
		{"li\xff@example.org", "", false},
		{strings.Repeat("a", 64) + "@" + strings.Repeat("b", 185) + ".org", strings.Repeat("a", 64) + "@" + strings.Repeat("b", 185) + ".org", true},
		{strings.Repeat("a", 64) + "@" + strings.Repeat("b", 186) + ".org", "", false},
	}
	for _, tc := range tests {
		got, err := NormalizeEmail(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("NormalizeEmail(%q) = %q, %v", tc.in, got, err)
		}
	}
}

func TestDisplayName(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"", true},
		{"张三", true},
		{strings.Repeat("名", MaxDisplayName), true},
		{strings.Repeat("名", MaxDisplayName+1), false},
		{"bad\xffutf8", false},
		{"line\nbreak", false},
		{"nul\x00", false},
		{"next line\u0085", false},
	}
	for _, tc := range tests {
		if err := checkDisplayName(tc.in); (err == nil) != tc.ok {
			t.Errorf("checkDisplayName(%q) = %v", tc.in, err)
		}
	}
}

func TestParseKind(t *testing.T) {
	tests := []struct {
		in   string
		want Kind
		ok   bool
	}{
		{"citizen", KindCitizen, true},
		{" Enterprise ", KindEnterprise, true},
		{"STAFF", KindStaff, true},
		{"", "", false},
		{"admin", "", false},
	}
	for _, tc := range tests {
		got, err := ParseKind(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseKind(%q) = %q, %v", tc.in, got, err)
		}
	}
}

func TestValidateLeavesTheUserAlone(t *testing.T) {
	u := User{Username: " Alice ", Kind: KindCitizen, Phone: "+86 138-1234-5678", Email: "A@Example.org"}
	before := u
	if err := u.Validate(); err != nil {
		t.Fatal(err)
	}
	if u != before {
		t.Fatalf("Validate changed the user: %+v", u)
	}
	u.Email = "not an address"
	var ve *ValidationError
	if err := u.Validate(); !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Field != "email" {
		t.Fatalf("Validate of a bad email: %v", err)
	}
}

func TestNormalizeNamesEveryInvalidField(t *testing.T) {
	u := &User{Username: "x", Kind: "alien", DisplayName: strings.Repeat("名", 65), Email: "nope", Phone: "123", AssuranceLevel: 7}
	err := u.Normalize()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("got %v", err)
	}
	fields := map[string]bool{}
	for _, f := range ve.Fields {
		fields[f.Field] = true
	}
	for _, want := range []string{"username", "kind", "display_name", "email", "phone", "assurance_level"} {
		if !fields[want] {
			t.Errorf("%s not named in %v", want, err)
		}
	}
}

func TestPasswordHashAndVerify(t *testing.T) {
	h := NewPasswordHasher(Argon2Params{MemoryKiB: 8192, Iterations: 1, Parallelism: 1})
	phc, err := h.Hash("correct horse battery")
	if err != nil || !strings.HasPrefix(phc, "$argon2id$v=19$m=8192,t=1,p=1$") {
		t.Fatalf("hash %q, %v", phc, err)
	}
	if ok, rehash, err := h.Verify("correct horse battery", phc); !ok || rehash || err != nil {
		t.Fatalf("right password: %v %v %v", ok, rehash, err)
	}
	if ok, _, err := h.Verify("wrong horse battery", phc); ok || err != nil {
		t.Fatalf("wrong password: %v %v", ok, err)
	}
	stronger := NewPasswordHasher(Argon2Params{MemoryKiB: 9216, Iterations: 1, Parallelism: 1})
	if ok, rehash, _ := stronger.Verify("correct horse battery", phc); !ok || !rehash {
		t.Fatalf("changed parameters: ok %v, rehash %v", ok, rehash)
	}
	if other, _ := h.Hash("correct horse battery"); other == phc {
		t.Fatal("two hashes of one password are equal: the salt is not random")
	}
}

func TestMalformedHashes(t *testing.T) {
	h := NewPasswordHasher(Argon2Params{MemoryKiB: 8192, Iterations: 1, Parallelism: 1})
	for _, bad := range []string{
		"",
		"plaintext",
		"$2a$10$abcdefghijklmnopqrstuv",
		"$argon2i$v=19$m=8192,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=18$m=8192,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=x,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=8192,t=1,p=1$!!!$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHQ$",
	} {
		if ok, _, err := h.Verify("x", bad); ok || !errors.Is(err, ErrMalformedHash) {
			t.Errorf("Verify(%q) = %v, %v", bad, ok, err)
		}
	}
}

func TestPasswordPolicy(t *testing.T) {
	tests := []struct {
		password, username, phone string
		want                      error
	}{
		{"short", "", "", ErrPasswordTooShort},
		{"长城长城长城长", "", "", ErrPasswordTooShort},
		{strings.Repeat("a", 129), "", "", ErrPasswordTooLong},
		{"bad\xffutf8 password", "", "", ErrPasswordEncoding},
		{"password", "", "", ErrPasswordCommon},
		{"PassWord123", "", "", ErrPasswordCommon},
		{"woaini1314", "", "", ErrPasswordCommon},
		{"zhangsan88", "ZhangSan88", "", ErrPasswordIdentifier},
		{"13812345678", "", "13812345678", ErrPasswordIdentifier},
		{"+86 138-1234-5678", "", "13812345678", ErrPasswordIdentifier},
		{"13812345678", "", "+86 138 1234 5678", ErrPasswordIdentifier},
		{"correct horse battery", "alice", "13812345678", nil},
		{"长城长城长城长城", "", "", nil},
	}
	for _, tc := range tests {
		if err := CheckPasswordPolicy(tc.password, tc.username, tc.phone); !errors.Is(err, tc.want) {
			t.Errorf("CheckPasswordPolicy(%q) = %v, want %v", tc.password, err, tc.want)
		}
	}
}
