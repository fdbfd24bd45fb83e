package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/govsso/sso/audit"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// otherwise the VCS revision from the build info is shown.
var version = "dev"

func runVersion(_ context.Context, e env, args []string) error {
	f := newFlags("version", e)
	if err := f.parse(args); err != nil {
		return err
	}
	info := map[string]string{"version": version, "go": runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info["revision"] = s.Value
			case "vcs.modified":
				info["modified"] = s.Value
			}
		}
	}
	if *f.json {
		return printJSON(e.stdout, info)
	}
	fmt.Fprintf(e.stdout, "sso %s (revision %s, %s)\n", info["version"], orDash(info["revision"]), info["go"])
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func runMigrateUp(ctx context.Context, e env, args []string) error {
	f := newFlags("migrate up", e)
	if err := f.parse(args); err != nil {
		return err
	}
	a, err := openFromFlags(ctx, f, e, false)
	if err != nil {
		return err
	}
	defer a.close()
	applied, err := a.db.Migrate(ctx)
	if err != nil {
		return err
	}
	if *f.json {
		type row struct {
			Version int    `json:"version"`
			Name    string `json:"name"`
		}
		out := []row{}
		for _, m := range applied {
			out = append(out, row{m.Version, m.Name})
		}
		return printJSON(e.stdout, map[string]any{"applied": out})
	}
	if len(applied) == 0 {
		fmt.Fprintln(e.stdout, "database is up to date")
	}
	for _, m := range applied {
		fmt.Fprintf(e.stdout, "applied %04d_%s\n", m.Version, m.Name)
	}
	return nil
}

func runMigrateStatus(ctx context.Context, e env, args []string) error {
	f := newFlags("migrate status", e)
	if err := f.parse(args); err != nil {
		return err
	}
	a, err := openFromFlags(ctx, f, e, false)
	if err != nil {
		return err
	}
	defer a.close()
	st, err := a.db.MigrationStatus(ctx)
	if err != nil {
		return err
	}
	return output(e.stdout, *f.json, st, []string{"VERSION", "NAME", "APPLIED"}, func() [][]string {
		var rows [][]string
		for _, s := range st {
			applied := "pending"
			if s.Applied {
				applied = formatTime(s.AppliedAt)
			}
			rows = append(rows, []string{fmt.Sprintf("%04d", s.Version), s.Name, applied})
		}
		return rows
	})
}

func runKeysList(ctx context.Context, e env, args []string) error {
	f := newFlags("keys list", e)
	if err := f.parse(args); err != nil {
		return err
	}
	a, err := openFromFlags(ctx, f, e, true)
	if err != nil {
		return err
	}
	defer a.close()
	keys, err := a.keys.List(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	return output(e.stdout, *f.json, keys, []string{"KID", "ALG", "STATE", "CREATED", "PUBLISHED UNTIL"}, func() [][]string {
		var rows [][]string
		for _, k := range keys {
			state, until := "active", "-"
			if !k.Active {
				state, until = "retired", formatTime(k.RetireAfter)
				if !k.RetireAfter.After(now) {
					state = "expired"
				}
			}
			rows = append(rows, []string{k.ID, k.Algorithm, state, formatTime(k.CreatedAt), until})
		}
		return rows
	})
}

func runKeysRotate(ctx context.Context, e env, args []string) error {
	f := newFlags("keys rotate", e)
	if err := f.parse(args); err != nil {
		return err
	}
	a, err := openFromFlags(ctx, f, e, true)
	if err != nil {
		return err
	}
	defer a.close()
	// A minute more than the longest token: running nodes may sign with the
	// old key for up to half a minute (their key cache) after the rotation.
	keep := a.cfg.LongestSignedTokenLifetime() + time.Minute
	keys, err := a.keys.Rotate(ctx, keep)
	if err != nil {
		return err
	}
	kids := map[string]string{}
	for _, k := range keys {
		kids[k.Algorithm] = k.ID
	}
	if _, err := a.audit.Append(ctx, audit.Event{Actor: "cli", Action: audit.ActionKeysRotate, Result: audit.ResultSuccess,
		Details: map[string]string{"RS256": kids["RS256"], "ES256": kids["ES256"]}}); err != nil {
		return err
	}
	return output(e.stdout, *f.json, keys, []string{"NEW KID", "ALG", "OLD KEYS PUBLISHED FOR"}, func() [][]string {
		var rows [][]string
		for _, k := range keys {
			rows = append(rows, []string{k.ID, k.Algorithm, keep.String()})
		}
		return rows
	})
}

func runAuditVerify(ctx context.Context, e env, args []string) error {
	f := newFlags("audit verify", e)
	archives := f.Bool("archives", false, "also check every archive file against the database (hash and chain)")
	if err := f.parse(args); err != nil {
		return err
	}
	a, err := openFromFlags(ctx, f, e, true)
	if err != nil {
		return err
	}
	defer a.close()
	// Chain what the server has not sealed yet (or everything, when it is
	// down), so the walk covers every committed record.
	if _, err := a.audit.Seal(ctx); err != nil {
		return err
	}
	res, err := a.audit.Verify(ctx)
	if err != nil {
		return err
	}
	if *archives && res.OK {
		n, err := verifyArchives(ctx, a.audit, archiveDir(a.cfg))
		if err != nil {
			return err
		}
		if !*f.json {
			fmt.Fprintf(e.stdout, "audit archives intact: %d files checked\n", n)
		}
	}
	if *f.json {
		if err := printJSON(e.stdout, res); err != nil {
			return err
		}
	} else if res.OK {
		fmt.Fprintf(e.stdout, "audit log intact: %d records checked, head hash %s\n", res.Checked, res.HeadHash)
	}
	if !res.OK {
		return fmt.Errorf("audit log broken at record %s: %s", strconv.FormatInt(res.BrokenSeq, 10), res.Reason)
	}
	return nil
}

// openFromFlags loads the configuration and opens the app; most verbs
// migrate first, the migrate verbs themselves do not.
func openFromFlags(ctx context.Context, f *flags, e env, migrate bool) (*app, error) {
	cfg, err := loadConfig(f, e)
	if err != nil {
		return nil, err
	}
	return openApp(ctx, cfg, e.stderr, migrate)
}
