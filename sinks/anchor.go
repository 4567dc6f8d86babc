package sinks

import (
	"bytes"
	"encoding/json"
)

// ParseAnchor decodes line if it is an anchor record (AnchorRecord), as
// the sinks deliver it: the record's JSON, possibly with fields a sink
// added (Elasticsearch's @timestamp).
func ParseAnchor(line []byte) (AnchorRecord, bool) {
	var a AnchorRecord
	if !bytes.Contains(line, []byte(`"`+AnchorRecordKind+`"`)) || json.Unmarshal(line, &a) != nil || a.Kind != AnchorRecordKind {
		return AnchorRecord{}, false
	}
	return a, true
}
