package users

import (
	"context"
	"slices"
	"testing"

	"github.com/govsso/sso/db"
	"github.com/govsso/sso/db/dbtest"
)

func TestSearchByNamePagesInNameOrder(t *testing.T) {
	dbtest.Backends(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := newTestStore(t, d)
		names := []string{"王小明", "王小红", "王芳", "王芳", "王", "汪洋", "Wang Fang", "wang li", "李王"}
		for i, n := range names {
			if err := s.Create(ctx, &User{Username: "user" + string(rune('a'+i)), DisplayName: n, Kind: KindCitizen}); err != nil {
				t.Fatal(err)
			}
		}
		gone := &User{Username: "deleted", DisplayName: "王已删除", Kind: KindCitizen}
		if err := s.Create(ctx, gone); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Exec(ctx, `UPDATE users SET deleted_at = created_at WHERE id = ?`, gone.ID); err != nil {
			t.Fatal(err)
		}
		// Two at a time, in name order, every match once.
		var got []string
		afterName, afterID := "", ""
		for page := 0; page < 10; page++ {
			list, err := s.SearchByName(ctx, "王", afterName, afterID, 2)
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range list {
				got = append(got, u.DisplayName)
			}
			if len(list) < 2 {
				break
			}
			afterName, afterID = list[len(list)-1].DisplayName, list[len(list)-1].ID
		}
		want := []string{"王", "王小明", "王小红", "王芳", "王芳"}
		slices.Sort(want) // byte order
		if !slices.Equal(got, want) {
			t.Fatalf("pages gave %q, want %q", got, want)
		}
		for _, tc := range []struct {
			prefix string
			want   int
		}{{"Wang", 1}, {"wang", 1}, {"汪", 1}, {"张", 0}, {"", 9}} {
			list, err := s.SearchByName(ctx, tc.prefix, "", "", 100)
			if err != nil || len(list) != tc.want {
				t.Errorf("prefix %q: %d accounts (%v), want %d", tc.prefix, len(list), err, tc.want)
			}
		}
	})
}
