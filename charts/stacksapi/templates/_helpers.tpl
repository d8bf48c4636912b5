{{/* The chart's name, at most 63 characters. */}}
{{- define "stacksapi.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The objects' name: the release name when it holds the chart's name, else both. */}}
{{- define "stacksapi.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "stacksapi.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stacksapi.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "stacksapi.labels" -}}
{{ include "stacksapi.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: controller
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "stacksapi.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "stacksapi.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
stack.toml from .Values.config. Helm reads every number in a values file as a float, so a whole
number is written back as an integer ("max_in_flight = 20", not "20.0"); strings are always
quoted on one line by toToml, so only bare numbers at the end of a line are touched.
*/}}
{{- define "stacksapi.stackToml" -}}
{{- $toml := toToml .Values.config }}
{{- regexReplaceAll "(?m)^(\\s*[A-Za-z0-9_\"-]+ = -?[0-9]+)\\.0$" $toml "${1}" }}
{{- end }}

{{/* The stack key of the last replica, checked against the API's 80-character limit. */}}
{{- define "stacksapi.checkKey" -}}
{{- $prefix := toString .Values.config.stack.key }}
{{- if .Values.perReplicaKey }}
{{- $longest := printf "%s-%s-%d" $prefix (include "stacksapi.fullname" .) (sub (int .Values.replicas) 1) }}
{{- if gt (len $longest) 80 }}
{{- fail (printf "config.stack.key: %q plus the pod name makes stack keys of %d characters (at most 80): shorten the key or the release name" $prefix (len $longest)) }}
{{- end }}
{{- else if gt (int .Values.replicas) 1 }}
{{- fail "replicas: more than one replica needs perReplicaKey: true (two controllers must never share a stack key)" }}
{{- end }}
{{- end }}
