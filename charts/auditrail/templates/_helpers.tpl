{{- define "auditrail.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "auditrail.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "auditrail.selectorLabels" -}}
app.kubernetes.io/name: {{ include "auditrail.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "auditrail.labels" -}}
{{ include "auditrail.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "auditrail.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "auditrail.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The agent's configuration: the user's, with the paths and listener the pod provides.
The listener is on the pod IP only (brackets fit IPv4 and IPv6), not on every interface. */}}
{{- define "auditrail.config" -}}
{{- $fixed := dict "auditLogPath" (printf "%s/%s" (trimSuffix "/" .Values.auditLog.directory) .Values.auditLog.file) "stateDir" "/var/lib/auditrail" "http" (dict "address" (printf "[${POD_IP}]:%d" (int .Values.metrics.port))) -}}
{{- toYaml (mustMergeOverwrite (deepCopy .Values.config) $fixed) -}}
{{- end -}}
