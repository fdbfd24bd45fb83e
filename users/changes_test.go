package users_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
	"github.com/govsso/sso/users"
)

// recordingListener notes the changes it hears of, and writes a row in
// the change's transaction, so a test can see that the two commit together.
type recordingListener struct {
	d    *db.DB
	seen []string
}

func (l *recordingListener) AccountsChanged(ctx context.Context, c users.Change, us ...*users.User) error {
	for _, u := range us {
		l.seen = append(l.seen, string(c)+":"+u.Username)
		if _, err := l.d.Exec(ctx, `INSERT INTO webhook_subscriptions (id, client_id, url, secret_enc, event_types, created_at) VALUES (?, 'probe', '', ?, '', ?)`,
			fmt.Sprintf("%d:%s", len(l.seen), c), []byte{1}, time.Now().UTC()); err != nil {
			return err
		}
	}
	return nil
}

func TestChangeListenerHearsEveryChangeInItsTransaction(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := newStore(t, d)
		l := &recordingListener{d: d}
		s.SetChangeListener(l)
		u := &users.User{Username: "lin", Kind: users.KindCitizen}
		if err := s.Create(ctx, u); err != nil {
			t.Fatal(err)
		}
		steps := []func(*users.User) error{
			func(u *users.User) error { u.PasswordHash = "x"; return nil }, // not a change anyone outside cares about
			func(u *users.User) error { u.DisplayName = "林"; return nil },
			func(u *users.User) error { u.Status = users.StatusDisabled; return nil },
			func(u *users.User) error { u.Status = users.StatusActive; return nil },
		}
		for _, fn := range steps {
			if _, err := s.Update(ctx, u.ID, fn); err != nil {
				t.Fatal(err)
			}
		}
		// A change rolled back leaves no trace of its event either.
		err := d.InTx(ctx, func(ctx context.Context) error {
			if _, err := s.Update(ctx, u.ID, func(u *users.User) error { u.DisplayName = "gone"; return nil }); err != nil {
				return err
			}
			return errors.New("roll back")
		})
		if err == nil {
			t.Fatal("no error")
		}
		if _, err := s.SoftDelete(ctx, u.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
		rows, err := d.Query(ctx, `SELECT id FROM webhook_subscriptions WHERE client_id = 'probe'`)
		if err != nil {
			t.Fatal(err)
		}
		var stored []string
		for rows.Next() {
			var id string
			rows.Scan(&id)
			stored = append(stored, id)
		}
		rows.Close()
		slices.Sort(stored)
		// The fifth, the rolled-back update, was heard but not committed.
		if want := []string{"1:created", "2:updated", "3:disabled", "4:updated", "6:deleted"}; !slices.Equal(stored, want) {
			t.Fatalf("committed %v, want %v", stored, want)
		}
		if want := []string{"created:lin", "updated:lin", "disabled:lin", "updated:lin", "updated:lin", "deleted:lin"}; !slices.Equal(l.seen, want) {
			t.Fatalf("heard %v, want %v (the rolled-back update included)", l.seen, want)
		}
	})
}
