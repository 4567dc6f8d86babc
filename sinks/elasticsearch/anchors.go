package elasticsearch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditrail/auditrail/sinks"
)

// timeLayouts are the {layout} parts of an index name.
var timeLayouts = regexp.MustCompile(`\{[^}]*\}`)

// anchorPattern returns the indices the sink writes to: its data stream
// or index, with the time layouts in the name as wildcards.
func anchorPattern(cfg Config) string {
	if cfg.Format == FormatElasticKubernetes {
		return cfg.elasticIndex()
	}
	return timeLayouts.ReplaceAllString(cfg.Index, "*")
}

// anchorQuery selects anchor records in both formats: the record's kind
// at the top (audit) or under auditrail.record (elastic-kubernetes).
var anchorQuery = []byte(`{"size":1000,"sort":["_doc"],"query":{"bool":{"should":[` +
	`{"match":{"kind":"` + sinks.AnchorRecordKind + `"}},` +
	`{"term":{"auditrail.record.kind":"` + sinks.AnchorRecordKind + `"}}]}}}`)

// ReadAnchors returns the anchor records (sinks.AnchorRecord) the sink
// indexed: the chain heads of the agent's S3 sinks, for `auditrail verify
// --anchors`. It scrolls through every match in the sink's indices.
func ReadAnchors(ctx context.Context, cfg Config) ([]sinks.AnchorRecord, error) {
	s, err := New(ctx, "anchors", cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		return nil, err
	}
	const keep = 2 * time.Minute
	res, err := esapi.SearchRequest{Index: []string{anchorPattern(cfg)}, Body: bytes.NewReader(anchorQuery), Scroll: keep}.Do(ctx, s.client)
	var out []sinks.AnchorRecord
	id := ""
	for {
		var page anchorPage
		if err := decodePage(res, err, &page); err != nil {
			return nil, fmt.Errorf("read anchors: %w", err)
		}
		id = page.ScrollID
		for _, h := range page.Hits.Hits {
			if a, ok := sinks.ParseAnchor(h.Source.raw); ok {
				out = append(out, a)
			} else if a, ok := sinks.ParseAnchor(h.Source.Auditrail.Record); ok {
				out = append(out, a)
			}
		}
		if len(page.Hits.Hits) == 0 || id == "" {
			break
		}
		res, err = esapi.ScrollRequest{ScrollID: id, Scroll: keep}.Do(ctx, s.client)
	}
	if id != "" {
		if res, err := (esapi.ClearScrollRequest{ScrollID: []string{id}}).Do(ctx, s.client); err == nil {
			res.Body.Close()
		}
	}
	return out, nil
}

type anchorPage struct {
	ScrollID string `json:"_scroll_id"`
	Hits     struct {
		Hits []struct {
			Source anchorSource `json:"_source"`
		} `json:"hits"`
	} `json:"hits"`
}

// anchorSource is a hit's document: the record itself, or the record
// under auditrail.record.
type anchorSource struct {
	raw       json.RawMessage
	Auditrail struct {
		Record json.RawMessage `json:"record"`
	} `json:"auditrail"`
}

func (a *anchorSource) UnmarshalJSON(b []byte) error {
	a.raw = append(a.raw[:0], b...)
	type plain anchorSource
	return json.Unmarshal(b, (*plain)(a))
}

func decodePage(res *esapi.Response, err error, page *anchorPage) error {
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return httpError("search", res.StatusCode, body)
	}
	return json.Unmarshal(body, page)
}
