package rules

import (
	"strings"
	"testing"

	"github.com/auditrail/auditrail/internal/auditjson"
)

// podBody is a pod of about 2 KB that matches no built-in rule; cmd is
// its container's shell command.
func podBody(cmd string) string {
	var env strings.Builder
	for i := range 20 {
		if i > 0 {
			env.WriteByte(',')
		}
		env.WriteString(`{"name":"VAR_` + strings.Repeat("X", i%7+1) + `","value":"some-value-of-a-variable"}`)
	}
	return `{"kind":"Pod","apiVersion":"v1","metadata":{"name":"api-0","namespace":"prod","labels":{"app":"api"}},` +
		`"spec":{"containers":[{"name":"api","image":"ghcr.io/example/api:1.2.3","command":["sh","-c",` + cmd + `],` +
		`"env":[` + env.String() + `],"ports":[{"containerPort":8080,"hostPort":0}],` +
		`"securityContext":{"runAsNonRoot":true,"allowPrivilegeEscalation":false}}],` +
		`"volumes":[{"name":"cfg","configMap":{"name":"api"}}],"dnsPolicy":"ClusterFirst"},` +
		`"status":{"phase":"Running","hostIP":"10.0.0.7","podIP":"10.1.2.3"}}`
}

// BenchmarkSetPodWrite measures a set on pod writes that match nothing,
// the hot path of the body rules: a pod create, the same with the \u0026
// escapes kube-apiserver writes for a shell's &&, and a JSON patch.
func BenchmarkSetPodWrite(b *testing.B) {
	set, _ := NewSet(true, nil, nil)
	pod := strings.Replace(event, `"resource":"configmaps"`, `"resource":"pods"`, 1)
	body := `"requestObject":{"kind":"ConfigMap","metadata":{"labels":{"tier":"db"}},"data":{"mode":"debug","n":3,"on":true}}`
	for _, c := range []struct{ name, verb, body string }{
		{"create", "create", podBody(`"exec /api --port 8080"`)},
		{"create-escapes", "create", podBody(`"migrate \u0026\u0026 exec /api --port 8080"`)},
		{"json-patch", "patch", `[{"op":"replace","path":"/spec/containers/0/image","value":"ghcr.io/example/api:1.2.4"}]`},
	} {
		line := []byte(strings.Replace(strings.Replace(pod, body, `"requestObject":`+c.body, 1), `"verb":"create"`, `"verb":"`+c.verb+`"`, 1))
		var ev auditjson.Event
		if err := auditjson.Parse(line, &ev); err != nil || len(ev.RequestObject) == 0 {
			b.Fatalf("%s: %v", c.name, err)
		}
		if got := set.Match(line, &ev, false, nil); len(got) != 0 {
			b.Fatalf("%s matched %s", c.name, got[0].ID)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(line)))
			var dst []*Rule
			for b.Loop() {
				dst = set.Match(line, &ev, false, dst[:0])
			}
		})
	}
}
