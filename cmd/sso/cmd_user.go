package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/users"
)

func runUserCreate(ctx context.Context, e env, args []string) error {
	f := newFlags("user create", e)
	username := f.String("username", "", "login name (required)")
	passwordStdin := f.Bool("password-stdin", false, "read the password from standard input (first line)")
	kind := f.String("type", "citizen", "account type: citizen, enterprise or staff")
	admin := f.Bool("admin", false, "make the account an administrator")
	name := f.String("name", "", "display name")
	phone := f.String("phone", "", "mobile phone number")
	email := f.String("email", "", "email address")
	if err := f.parse(args); err != nil {
		return err
	}
	if *username == "" {
		return usageError{msg: "--username is required"}
	}
	if len(f.args) > 0 {
		return usageError{msg: fmt.Sprintf("unexpected argument %q", f.args[0])}
	}
	k, err := users.ParseKind(*kind)
	if err != nil {
		return usageError{msg: "--type: " + err.Error()}
	}
	u := &users.User{Username: *username, Kind: k, IsAdmin: *admin, DisplayName: *name, Phone: *phone, Email: *email}
	var password string
	if *passwordStdin {
		if password, err = readSecretLine(e.stdin); err != nil {
			return fmt.Errorf("read password: %w", err)
		}
	}
	a, err := openFromFlags(ctx, f, e, true)
	if err != nil {
		return err
	}
	defer a.close()
	if *passwordStdin {
		if err := users.CheckPasswordPolicy(password, *username, *phone); err != nil {
			return err
		}
		if u.PasswordHash, err = a.hasher.Hash(password); err != nil {
			return err
		}
	}
	err = a.db.InTx(ctx, func(ctx context.Context) error {
		if err := a.users.Create(ctx, u); err != nil {
			return err
		}
		_, err := a.audit.Append(ctx, audit.Event{Actor: "cli", Subject: u.ID, Action: audit.ActionUserCreate, Result: audit.ResultSuccess,
			Details: map[string]string{"username": u.Username, "kind": string(u.Kind), "admin": strconv.FormatBool(u.IsAdmin)}})
		return err
	})
	if err != nil {
		return err
	}
	return printUsers(e, *f.json, []*users.User{u}, true)
}

func runUserList(ctx context.Context, e env, args []string) error {
	f := newFlags("user list", e)
	limit := f.Int("limit", 100, "at most this many accounts (1–1000)")
	after := f.String("after", "", "list accounts after this id (the last id of the previous page)")
	status := f.String("status", "", "only accounts with this status: active or disabled")
	if err := f.parse(args); err != nil {
		return err
	}
	if *limit < 1 || *limit > 1000 {
		return usageError{msg: "--limit must be from 1 to 1000"}
	}
	if *status != "" && *status != string(users.StatusActive) && *status != string(users.StatusDisabled) {
		return usageError{msg: "--status must be active or disabled"}
	}
	a, err := openFromFlags(ctx, f, e, true)
	if err != nil {
		return err
	}
	defer a.close()
	list, err := a.users.List(ctx, users.ListOptions{AfterID: *after, Limit: *limit, Status: users.Status(*status)})
	if err != nil {
		return err
	}
	return printUsers(e, *f.json, list, false)
}

func printUsers(e env, asJSON bool, list []*users.User, single bool) error {
	// Phone numbers are masked even here: a terminal is often shared or recorded.
	masked := make([]*users.User, len(list))
	for i, u := range list {
		c := *u
		c.Phone = users.MaskPhone(u.Phone)
		masked[i] = &c
	}
	var v any = masked
	if single && len(masked) == 1 {
		v = masked[0]
	}
	return output(e.stdout, asJSON, v, []string{"ID", "USERNAME", "TYPE", "NAME", "PHONE", "STATUS", "ADMIN", "LEVEL"}, func() [][]string {
		var rows [][]string
		for _, u := range masked {
			rows = append(rows, []string{u.ID, u.Username, string(u.Kind), orDash(u.DisplayName), orDash(u.Phone),
				string(u.Status), strconv.FormatBool(u.IsAdmin), strconv.Itoa(u.AssuranceLevel)})
		}
		return rows
	})
}

func runUserDisable(ctx context.Context, e env, args []string) error {
	return setUserStatus(ctx, e, "user disable", args, users.StatusDisabled, audit.ActionUserDisable)
}

func runUserEnable(ctx context.Context, e env, args []string) error {
	return setUserStatus(ctx, e, "user enable", args, users.StatusActive, audit.ActionUserEnable)
}

func setUserStatus(ctx context.Context, e env, name string, args []string, status users.Status, action string) error {
	f := newFlags(name, e)
	if err := f.parse(args); err != nil {
		return err
	}
	if len(f.args) != 1 {
		return usageError{msg: "give exactly one username"}
	}
	a, err := openFromFlags(ctx, f, e, true)
	if err != nil {
		return err
	}
	defer a.close()
	var updated *users.User
	err = a.db.InTx(ctx, func(ctx context.Context) error {
		u, err := a.users.GetByUsername(ctx, f.args[0])
		if err != nil {
			return err
		}
		if updated, err = a.users.Update(ctx, u.ID, func(u *users.User) error { u.Status = status; return nil }); err != nil {
			return err
		}
		if status == users.StatusDisabled {
			if err := revokeCertificatesOnDisable(a)(ctx, u.ID); err != nil {
				return err
			}
		}
		_, err = a.audit.Append(ctx, audit.Event{Actor: "cli", Subject: u.ID, Action: action, Result: audit.ResultSuccess})
		return err
	})
	if err != nil {
		return err
	}
	return printUsers(e, *f.json, []*users.User{updated}, true)
}

// readSecretLine reads the first line of r, without its line ending, so that
// `echo "$PW" | sso user create --password-stdin` works and the secret never
// appears in the process list.
func readSecretLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("standard input is empty")
	}
	return line, nil
}
