package config_test

import (
	"strconv"
	"strings"
	"testing"
)

// A value from the environment may be a secret (a password in a URL, a
// token): when the key it went into is invalid, the error names the key
// and the variable, never the value, not even escaped.
func TestErrorsNameTheVariableNotItsValue(t *testing.T) {
	const secret = `s3cr3t"pa\ss`
	es := func(addr string) string {
		return "auditLogPath: /a/audit.log\nsinks:\n  - type: elasticsearch\n    elasticsearch: {addresses: [\"" + addr + "\"]}\n"
	}
	cases := []struct {
		name, env, yaml string
		want            []string
	}{
		// An address is not quoted at all: it may hold a password.
		{"es address", "htps://elastic:" + secret + "@es:9200", es("${ES_URL}"),
			[]string{"sinks[0].elasticsearch.addresses[0]"}},
		{"es address in part", "elastic:" + secret, es("htps://${ES_AUTH}@es:9200"),
			[]string{"sinks[0].elasticsearch.addresses[0]"}},
		{"path in part", secret, "auditLogPath: audit/${AUDIT_PATH}/audit.log\nsinks:\n  - type: discard\n",
			[]string{"auditLogPath", `"audit/${AUDIT_PATH}/audit.log"`}},
		{"kafka broker", secret, "auditLogPath: /a/audit.log\nsinks:\n  - type: kafka\n    kafka: {brokers: [\"${BROKER:-k:9092}\"], topic: t}\n",
			[]string{"sinks[0].kafka.brokers[0]", "${BROKER}"}},
		{"relative path", "audit/" + secret, "auditLogPath: ${AUDIT_PATH}\nsinks:\n  - type: discard\n",
			[]string{"auditLogPath", "${AUDIT_PATH}"}},
		{"duration", secret, "auditLogPath: /a/audit.log\npollInterval: ${POLL}\nsinks:\n  - type: discard\n",
			[]string{"line 2", "${POLL}"}},
		{"size", secret, "auditLogPath: /a/audit.log\nmaxLineBytes: ${MAX_LINE}\nsinks:\n  - type: discard\n",
			[]string{"line 2", "${MAX_LINE}"}},
		{"alert destination name", secret, "auditLogPath: /a/audit.log\nsinks: [{type: discard}]\nalerts: {destinations: [{name: \"${DEST}\", type: webhook, url: 'https://x/'}]}\n",
			[]string{"alerts.destinations[0].name", "${DEST}"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, v := range []string{"ES_URL", "ES_AUTH", "BROKER", "AUDIT_PATH", "POLL", "MAX_LINE", "DEST"} {
				t.Setenv(v, c.env)
			}
			_, err := parse([]byte(c.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			for _, leak := range []string{"s3cr3t", secret, strconv.Quote(secret)} {
				if strings.Contains(msg, leak) {
					t.Errorf("error quotes the value (%s):\n%s", leak, msg)
				}
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error does not name %s:\n%s", w, msg)
				}
			}
		})
	}
}
