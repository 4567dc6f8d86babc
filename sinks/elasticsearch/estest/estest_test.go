package estest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// A _bulk request answers only what its filter_path keeps, as
// Elasticsearch does: arrays are transparent, * matches within a part, **
// across parts, and the sink's filter leaves each item's status and, for
// an item that failed, its error's type and reason.
func TestBulkFilterPath(t *testing.T) {
	body := `{"create":{"_index":"ix","_id":"a"}}` + "\n" + `{"x":1}` + "\n" +
		`{"create":{"_index":"ix","_id":"b"}}` + "\n" + `{"x":2}` + "\n" +
		`{"create":{"_index":"ix","_id":"a"}}` + "\n" + `{"x":1}` + "\n" +
		`{"create":{"_index":"ix","_id":"c"}}` + "\n" + `[1]` + "\n"
	for _, tc := range []struct {
		filter, want string
	}{
		{"errors,items.*.status,items.*.error.type,items.*.error.reason", `{"errors":true,"items":[
			{"create":{"status":201}},
			{"create":{"status":429,"error":{"type":"injected","reason":"injected fault"}}},
			{"create":{"status":409,"error":{"type":"version_conflict_engine_exception","reason":"[a]: version conflict, document already exists"}}},
			{"create":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse: not a JSON object"}}}]}`},
		{"", `{"took":1,"errors":true,"items":[
			{"create":{"_index":"ix","_id":"a","status":201}},
			{"create":{"_index":"ix","_id":"b","status":429,"error":{"type":"injected","reason":"injected fault"}}},
			{"create":{"_index":"ix","_id":"a","status":409,"error":{"type":"version_conflict_engine_exception","reason":"[a]: version conflict, document already exists"}}},
			{"create":{"_index":"ix","_id":"c","status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse: not a JSON object"}}}]}`},
		{"items.*._id", `{"items":[{"create":{"_id":"a"}},{"create":{"_id":"b"}},{"create":{"_id":"a"}},{"create":{"_id":"c"}}]}`},
		// Items without an error are left out, as Elasticsearch does.
		{"items.**.type", `{"items":[{"create":{"error":{"type":"injected"}}},
			{"create":{"error":{"type":"version_conflict_engine_exception"}}},{"create":{"error":{"type":"mapper_parsing_exception"}}}]}`},
		{"took,errors", `{"took":1,"errors":true}`},
		{"nothing.here", `{}`},
	} {
		t.Run("filter_path="+tc.filter, func(t *testing.T) {
			srv := New()
			defer srv.Close()
			srv.FailItems(func(_, id string) int {
				if id == "b" {
					return 429
				}
				return 0
			})
			res, err := http.Post(srv.URL+"/_bulk?filter_path="+url.QueryEscape(tc.filter), "application/x-ndjson", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			var got, want any
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("answer %s: %v", b, err)
			}
			if err := json.Unmarshal([]byte(tc.want), &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("filter_path=%s answered\n%s\nwant\n%s", tc.filter, b, tc.want)
			}
		})
	}
}

// A malformed _bulk body stores nothing, and an exclusion in filter_path,
// which the server does not serve, is refused rather than ignored.
func TestBulkRefused(t *testing.T) {
	srv := New()
	defer srv.Close()
	for _, tc := range []struct{ query, body string }{
		{"", `{"create":{"_index":"ix","_id":"a"}}` + "\n" + `{"x":1}` + "\n" + `not an action` + "\n" + `{}` + "\n"},
		{"?filter_path=-took", `{"create":{"_index":"ix","_id":"a"}}` + "\n" + `{"x":1}` + "\n"},
	} {
		res, err := http.Post(srv.URL+"/_bulk"+tc.query, "application/x-ndjson", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: HTTP %d, want 400", tc.query, res.StatusCode)
		}
	}
	if n := len(srv.Docs("ix")); n != 0 {
		t.Errorf("%d documents stored from refused requests", n)
	}
}
