package agent

import (
	"encoding/json"
	"time"
)

func marshalRecord(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain structs of strings and numbers always marshal
	}
	return b
}

func timestamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
