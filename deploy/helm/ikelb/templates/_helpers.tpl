{{/* The chart's name, truncated to the 63 characters a label value may hold. */}}
{{- define "ikelb.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Object names: the release name, unless it already contains the chart's name. */}}
{{- define "ikelb.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "ikelb.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ikelb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ikelb.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 }}
{{ include "ikelb.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: agent
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The pin directory as the agent sees it (the host's bpffs, mounted at the same path). */}}
{{- define "ikelb.pinDir" -}}
{{- printf "%s/%s" (trimSuffix "/" .Values.bpffs.hostPath) .Values.bpffs.pinDir -}}
{{- end -}}

{{/* ikelb.json: the user's config plus the keys the chart owns (paths and listeners the pod
     spec depends on). */}}
{{- define "ikelb.config" -}}
{{- $c := deepCopy .Values.config -}}
{{- $_ := set $c "bpffs" (include "ikelb.pinDir" .) -}}
{{- $_ := set $c "admin" (dict "socket" "/run/ikelb/ikelb.sock") -}}
{{- $_ := set $c "health" (dict "listen" (printf "127.0.0.1:%d" (int .Values.health.port))) -}}
{{- $_ := set $c "metrics" (dict "listen" (ternary .Values.metrics.listen nil .Values.metrics.enabled)) -}}
{{- toPrettyJson $c -}}
{{- end -}}
