package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/govsso/sso/audit"
	"github.com/govsso/sso/users"
	"github.com/govsso/sso/webhooks"
)

// runUserImport creates accounts from a CSV file ("-" for standard input).
// It exits 1 when any row was rejected, so that scripts notice, after
// printing the report.
func runUserImport(ctx context.Context, e env, args []string) error {
	f := newFlags("user import", e)
	encoding := f.String("encoding", "utf8", "character encoding of the file: utf8 (a byte-order mark is accepted) or gbk")
	dryRun := f.Bool("dry-run", false, "validate every row, against the database too, and write nothing")
	allOrNothing := f.Bool("all-or-nothing", false, "import in one transaction: if any row is rejected, nothing is written")
	notify := f.Bool("notify", false, "text every imported person with a phone number that the account exists and where to set a password")
	if err := f.parse(args); err != nil {
		return err
	}
	if len(f.args) != 1 {
		return usageError{msg: "give exactly one CSV file (or - for standard input)"}
	}
	if *encoding != "utf8" && *encoding != "gbk" {
		return usageError{msg: "--encoding must be utf8 or gbk"}
	}
	var in io.Reader = e.stdin
	if f.args[0] != "-" {
		file, err := os.Open(f.args[0])
		if err != nil {
			return err
		}
		defer file.Close()
		in = file
	}
	a, err := openFromFlags(ctx, f, e, true)
	if err != nil {
		return err
	}
	defer a.close()
	im := users.NewImporter(a.db, a.users, users.NewOrgUnits(a.db), a.audit)
	rep, err := im.Import(ctx, in, users.ImportOptions{Encoding: *encoding, DryRun: *dryRun, AllOrNothing: *allOrNothing,
		Audit: audit.Event{Actor: "cli"}, OnCreated: webhooks.ImportHook(webhooks.NewHub(a.db, a.kek))})
	var fe *users.ImportFileError
	if errors.As(err, &fe) {
		return fmt.Errorf("%s: %w", f.args[0], err)
	}
	if err != nil {
		return fmt.Errorf("import stopped after %d accounts were written: %w", rep.Imported, err)
	}
	if *notify && rep.Imported > 0 {
		sent, err := notifyImported(ctx, a, rep.UserIDs)
		fmt.Fprintf(e.stderr, "sso user import: %d activation messages sent\n", sent)
		if err != nil {
			return fmt.Errorf("activation messages: %w", err)
		}
	}
	if *f.json {
		if err := printJSON(e.stdout, rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.stdout, "rows %d, valid %d, imported %d, rejected %d\n", rep.Rows, rep.Valid, rep.Imported, rep.Rejected)
		if len(rep.Errors) > 0 {
			rows := make([][]string, len(rep.Errors))
			for i, re := range rep.Errors {
				rows[i] = []string{strconv.Itoa(re.Line), orDash(re.Column), re.Reason}
			}
			if err := printTable(e.stdout, []string{"LINE", "COLUMN", "REASON"}, rows); err != nil {
				return err
			}
		}
	}
	switch {
	case rep.Aborted:
		return fmt.Errorf("the file could not be read to the end (see the report); %d accounts were imported", rep.Imported)
	case rep.Rejected > 0 && *allOrNothing && !*dryRun:
		return fmt.Errorf("%d rows rejected; nothing was imported", rep.Rejected)
	case rep.Rejected > 0:
		return fmt.Errorf("%d rows rejected", rep.Rejected)
	}
	return nil
}

// notifyImported texts each imported person with a phone number, under the
// same send limits as one-time codes; a person over the limit is skipped.
func notifyImported(ctx context.Context, a *app, ids []string) (int, error) {
	senders, err := otpSenders(a.cfg, a.log)
	if err != nil {
		return 0, err
	}
	codes := users.NewOTP(a.db, a.kek, senders, a.audit, users.OTPOptions{
		SendInterval: a.cfg.OTPSendInterval, DailyLimit: a.cfg.OTPDailyLimit, HourlyLimitPerIP: a.cfg.OTPIPHourlyLimit})
	resetURL := strings.TrimSuffix(a.cfg.Issuer, "/") + "/reset"
	sent := 0
	for _, id := range ids {
		u, err := a.users.Get(ctx, id)
		if err != nil {
			return sent, err
		}
		if u.Phone == "" {
			continue
		}
		switch err := codes.Notify(ctx, u.Phone, users.ActivationText(u.Username, resetURL)); {
		case errors.Is(err, users.ErrOTPRateLimited):
		case err != nil:
			return sent, err
		default:
			sent++
		}
	}
	return sent, nil
}
