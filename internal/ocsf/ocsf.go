package ocsf

import (
	"bytes"
	"errors"
	"net/netip"
	"time"
	"unsafe"

	"github.com/auditrail/auditrail/internal/auditjson"
)

// OCSF identifiers of what Append writes.
const (
	// Version is the OCSF schema version the events follow.
	Version = "1.7.0"
	// ClassUID is API Activity; CategoryUID is Application Activity.
	ClassUID    = 6003
	CategoryUID = 6
)

// ErrNotMappable is returned for a line that is not valid JSON or has
// neither stageTimestamp nor requestReceivedTimestamp.
var ErrNotMappable = errors.New("ocsf: not a mappable audit event")

// Activities of API Activity.
const (
	activityCreate = 1
	activityRead   = 2
	activityUpdate = 3
	activityDelete = 4
	activityOther  = 99
)

var activityNames = map[int]string{activityCreate: "Create", activityRead: "Read", activityUpdate: "Update",
	activityDelete: "Delete", activityOther: "Other"}

// activity maps a Kubernetes verb to an API Activity activity_id.
func activity(verb []byte) int {
	switch string(verb) {
	case "create":
		return activityCreate
	case "get", "list", "watch":
		return activityRead
	case "update", "patch":
		return activityUpdate
	case "delete", "deletecollection":
		return activityDelete
	}
	return activityOther
}

// fields are the raw top-level values of an event that Append needs
// beyond those auditjson extracts.
type fields struct {
	apiVersion, user, sourceIPs, userAgent, objectRef []byte
	responseStatus, annotations                       []byte
	// unmapped are the members that go to unmapped as they are.
	unmapped [maxUnmapped][2][]byte
	n        int
}

// maxUnmapped bounds the top-level members that go to unmapped; an event
// has 18 members in all (audit.k8s.io/v1), fewer than half unmapped.
const maxUnmapped = 24

// scan collects the top-level members of line, false when there are more
// unmapped ones than fields holds. The bodies ev holds are not scanned
// again.
func (f *fields) scan(line []byte, ev *auditjson.Event) bool {
	m := newMembers(line)
	for {
		k, ok := m.nextKey()
		if !ok {
			return true
		}
		var v []byte
		switch string(k) {
		case "requestObject":
			v = m.valueAt(ev.RequestObject)
		case "responseObject":
			v = m.valueAt(ev.ResponseObject)
		default:
			v = m.value()
		}
		// A member whose value is not of the type kube-apiserver writes
		// is not mapped: it goes to unmapped as it is.
		mapped := false
		switch string(k) {
		case "kind":
			mapped = string(v) == `"Event"`
		case "auditID", "verb", "requestURI", "stageTimestamp":
			mapped = isString(v) // from auditjson's fields
		case "apiVersion":
			f.apiVersion, mapped = v, isString(v)
		case "userAgent":
			f.userAgent, mapped = v, isString(v)
		case "user":
			f.user, mapped = v, isKind(v, '{')
		case "objectRef":
			f.objectRef, mapped = v, isKind(v, '{')
		case "sourceIPs":
			f.sourceIPs, mapped = v, isKind(v, '[')
		case "annotations":
			f.annotations = v
		case "responseStatus":
			f.responseStatus = v
		}
		if !mapped && !f.add(k, v) {
			return false
		}
	}
}

func isKind(v []byte, c byte) bool { return len(v) > 0 && v[0] == c }

func isString(v []byte) bool { return isKind(v, '"') }

// userMapped tells the members of user that actor.user holds.
func userMapped(k, v []byte) bool {
	switch string(k) {
	case "username", "uid":
		return isString(v)
	case "groups":
		if !isKind(v, '[') {
			return false
		}
		el := newElements(v)
		for g, ok := el.next(); ok; g, ok = el.next() {
			if !isString(g) {
				return false
			}
		}
		return true
	}
	return false
}

// objectRefMapped tells the members of objectRef that resources and api
// hold.
func objectRefMapped(k, v []byte) bool {
	switch string(k) {
	case "resource", "subresource", "namespace", "name", "apiGroup", "apiVersion", "uid":
		return isString(v)
	}
	return false
}

func (f *fields) add(k, v []byte) bool {
	if f.n == maxUnmapped {
		return false
	}
	f.unmapped[f.n] = [2][]byte{k, v}
	f.n++
	return true
}

// Append appends to dst the OCSF API Activity event, a JSON object, of
// line, an audit event that auditjson.Parse parsed into ev. On error dst
// is returned as it was.
func Append(dst, line []byte, ev *auditjson.Event) ([]byte, error) {
	t, ok := millis(ev.StageTimestamp)
	start, startOK := millis(ev.RequestReceivedTimestamp)
	if !ok {
		t, ok = start, startOK
	}
	var f fields
	if !ok || !valid(line) || !f.scan(line, ev) {
		return dst, ErrNotMappable
	}
	e := enc{b: dst}
	e.open('{')
	classify(&e, ev, t, start, startOK)
	writeMetadata(&e, ev, &f)
	writeActor(&e, ev, &f)
	writeAPI(&e, ev, &f)
	writeEndpoint(&e, &f)
	writeHTTP(&e, ev, &f)
	writeResources(&e, ev, &f)
	writeUnmapped(&e, &f)
	e.close('}')
	return e.b, nil
}

// classify writes the class, activity, severity, times and status.
func classify(e *enc, ev *auditjson.Event, t, start int64, startOK bool) {
	act := activity(ev.Verb)
	e.intField("activity_id", int64(act))
	e.litField("activity_name", activityNames[act])
	e.intField("category_uid", CategoryUID)
	e.litField("category_name", "Application Activity")
	e.intField("class_uid", ClassUID)
	e.litField("class_name", "API Activity")
	e.intField("type_uid", ClassUID*100+int64(act))
	e.litField("type_name", "API Activity: "+activityNames[act])
	e.intField("severity_id", 1)
	e.litField("severity", "Informational")
	e.intField("time", t)
	if startOK {
		e.intField("start_time", start)
	}
	switch {
	case ev.Code == 0:
		e.intField("status_id", 0)
		e.litField("status", "Unknown")
		return
	case ev.Code < 400:
		e.intField("status_id", 1)
		e.litField("status", "Success")
	default:
		e.intField("status_id", 2)
		e.litField("status", "Failure")
	}
	e.key("status_code")
	e.b = append(e.b, '"')
	e.int(int64(ev.Code))
	e.b = append(e.b, '"')
}

func writeMetadata(e *enc, ev *auditjson.Event, f *fields) {
	e.key("metadata")
	e.open('{')
	e.litField("version", Version)
	e.key("product")
	e.open('{')
	e.litField("name", "kube-apiserver")
	e.litField("vendor_name", "Kubernetes")
	e.close('}')
	e.litField("log_name", "audit")
	if v, ok := str(f.apiVersion); ok {
		e.strField("log_version", v)
	}
	if len(ev.StageTimestamp) > 0 {
		e.strField("original_time", ev.StageTimestamp)
	}
	e.close('}')
}

func writeActor(e *enc, ev *auditjson.Event, f *fields) {
	e.key("actor")
	e.open('{')
	e.key("user")
	e.open('{')
	e.strField("name", ev.Username)
	m := newMembers(f.user)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch string(k) {
		case "uid":
			if s, ok := str(v); ok {
				e.strField("uid", s)
			}
		case "groups":
			e.key("groups")
			e.open('[')
			el := newElements(v)
			for g, ok := el.next(); ok; g, ok = el.next() {
				if s, ok := str(g); ok {
					e.sep()
					e.open('{')
					e.strField("name", s)
					e.close('}')
				}
			}
			e.close(']')
		}
	}
	e.close('}')
	if len(ev.Decision) > 0 {
		e.key("authorizations")
		e.open('[')
		e.sep()
		e.open('{')
		e.strField("decision", ev.Decision)
		e.close('}')
		e.close(']')
	}
	e.close('}')
}

func writeAPI(e *enc, ev *auditjson.Event, f *fields) {
	e.key("api")
	e.open('{')
	e.strField("operation", ev.Verb)
	e.key("request")
	e.open('{')
	e.strField("uid", ev.AuditID)
	e.close('}')
	if ev.Code != 0 {
		e.key("response")
		e.open('{')
		e.intField("code", int64(ev.Code))
		m := newMembers(f.responseStatus)
		for k, v, ok := m.next(); ok; k, v, ok = m.next() {
			if s, isStr := str(v); isStr && string(k) == "message" {
				e.strField("message", s)
			} else if isStr && string(k) == "reason" {
				e.strField("error", s)
			}
		}
		e.close('}')
	}
	if len(ev.APIGroup) > 0 {
		e.key("group")
		e.open('{')
		e.strField("name", ev.APIGroup)
		e.close('}')
	}
	m := newMembers(f.objectRef)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		if s, isStr := str(v); isStr && string(k) == "apiVersion" {
			e.strField("version", s)
		}
	}
	e.close('}')
}

// writeEndpoint writes src_endpoint: the first source IP, where the
// request came from, and the others, the proxies it came through. Without
// a source IP, as in no event kube-apiserver writes, the endpoint is named
// "unknown": OCSF requires it.
func writeEndpoint(e *enc, f *fields) {
	e.key("src_endpoint")
	e.open('{')
	el := newElements(f.sourceIPs)
	n := 0
	for v, ok := el.next(); ok; v, ok = el.next() {
		ip, isStr := str(v)
		if !isStr || !validIP(ip) {
			continue
		}
		switch n {
		case 0:
			e.strField("ip", ip)
		case 1:
			e.key("intermediate_ips")
			e.open('[')
			fallthrough
		default:
			e.sep()
			e.str(ip)
		}
		n++
	}
	if n > 1 {
		e.close(']')
	}
	if n == 0 {
		e.litField("name", "unknown")
	}
	e.close('}')
}

// validIP tells an IP address as OCSF's ip_t allows it, without a zone.
func validIP(b []byte) bool {
	if len(b) == 0 || len(b) > 39 {
		return false
	}
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == '.' || c == ':') {
			return false
		}
	}
	// The string shares b's bytes, which do not change during the call,
	// and is not kept: ParseAddr keeps only a zone, and b has none.
	_, err := netip.ParseAddr(unsafe.String(&b[0], len(b)))
	return err == nil
}

func writeHTTP(e *enc, ev *auditjson.Event, f *fields) {
	e.key("http_request")
	e.open('{')
	e.key("url")
	e.open('{')
	path, query, hasQuery := bytes.Cut(ev.RequestURI, []byte{'?'})
	e.strField("path", path)
	if hasQuery {
		e.strField("query_string", query)
	}
	e.close('}')
	if s, ok := str(f.userAgent); ok {
		e.strField("user_agent", s)
	}
	e.close('}')
}

// writeResources writes the object of the request, when it has one.
func writeResources(e *enc, ev *auditjson.Event, f *fields) {
	if !isKind(f.objectRef, '{') {
		return
	}
	e.key("resources")
	e.open('[')
	e.sep()
	e.open('{')
	// OCSF requires a name or uid; a request on a collection (list,
	// deletecollection, create without a name) has an empty name.
	e.strField("name", ev.Name)
	if len(ev.Namespace) > 0 {
		e.strField("namespace", ev.Namespace)
	}
	if len(ev.Resource) > 0 || len(ev.Subresource) > 0 {
		e.key("type")
		e.b = append(e.b, '"')
		e.b = append(e.b, ev.Resource...)
		if len(ev.Subresource) > 0 {
			e.b = append(e.b, '/')
			e.b = append(e.b, ev.Subresource...)
		}
		e.b = append(e.b, '"')
	}
	m := newMembers(f.objectRef)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		if s, isStr := str(v); isStr && string(k) == "uid" {
			e.strField("uid", s)
		}
	}
	e.close('}')
	e.close(']')
}

// writeUnmapped writes the members of the event that have no OCSF
// attribute, and those of user and objectRef, and source IPs that are
// not addresses.
func writeUnmapped(e *enc, f *fields) {
	e.key("unmapped")
	e.open('{')
	for _, kv := range f.unmapped[:f.n] {
		e.rawKey(kv[0])
		e.raw(kv[1])
	}
	if isKind(f.user, '{') {
		unmappedMembers(e, "user", f.user, userMapped)
	}
	if isKind(f.objectRef, '{') {
		unmappedMembers(e, "objectRef", f.objectRef, objectRefMapped)
	}
	if !isKind(f.sourceIPs, '[') {
		e.close('}')
		return
	}
	el := newElements(f.sourceIPs)
	for v, ok := el.next(); ok; v, ok = el.next() {
		if ip, isStr := str(v); !isStr || !validIP(ip) {
			e.key("sourceIPs")
			e.raw(f.sourceIPs)
			break
		}
	}
	e.close('}')
}

// unmappedMembers writes as name the members of obj but those mapped.
func unmappedMembers(e *enc, name string, obj []byte, mapped func(k, v []byte) bool) {
	opened := false
	m := newMembers(obj)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		if mapped(k, v) {
			continue
		}
		if !opened {
			e.key(name)
			e.open('{')
			opened = true
		}
		e.rawKey(k)
		e.raw(v)
	}
	if opened {
		e.close('}')
	}
}

// millis returns an RFC 3339 timestamp in milliseconds since the epoch.
// kube-apiserver writes "2006-01-02T15:04:05.000000Z"; others go the slow
// way.
func millis(ts []byte) (int64, bool) {
	if ms, ok := fastMillis(ts); ok {
		return ms, true
	}
	t, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return 0, false
	}
	return t.UnixMilli(), true
}

// fastMillis parses "YYYY-MM-DDTHH:MM:SS[.fraction]Z".
func fastMillis(b []byte) (int64, bool) {
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' || b[len(b)-1] != 'Z' {
		return 0, false
	}
	num := func(i, n int) int {
		v := 0
		for _, c := range b[i : i+n] {
			if c < '0' || c > '9' {
				return -1
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	year, mon, day, hh, mm, ss := num(0, 4), num(5, 2), num(8, 2), num(11, 2), num(14, 2), num(17, 2)
	if year < 0 || mon < 1 || mon > 12 || day < 1 || day > 31 || hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 59 {
		return 0, false
	}
	ms := 0
	if frac := b[19 : len(b)-1]; len(frac) > 0 {
		if frac[0] != '.' || len(frac) < 2 {
			return 0, false
		}
		digits := frac[1:]
		for i, c := range digits {
			if c < '0' || c > '9' {
				return 0, false
			}
			if i < 3 {
				ms = ms*10 + int(c-'0')
			}
		}
		for i := len(digits); i < 3; i++ {
			ms *= 10
		}
	}
	t := time.Date(year, time.Month(mon), day, hh, mm, ss, 0, time.UTC)
	if t.Day() != day {
		return 0, false // February 30th
	}
	return t.UnixMilli() + int64(ms), true
}
