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
The config as stack.toml's two tables. `config.stack` and `config.kubernetes` are taken as they
are; any other key of `config` is an agent-stack-k8s controller setting (their values file's flat
`config:` map) and is sorted as stacksapi.kubernetes.split_controller_config sorts it: stack
settings to [stack] under our names (`tags: [queue=…, k=v]` to queue_key and tags, durations to
seconds), settings with no meaning here dropped, the rest to [kubernetes] (which knows their
names). With resource classes, resource_class = "*" joins the tags. YAML, for fromYaml.
*/}}
{{- define "stacksapi.config" -}}
{{- $stack := deepCopy (.Values.config.stack | default dict) }}
{{- $kube := deepCopy (.Values.config.kubernetes | default dict) }}
{{- $toStack := dict "id" "key" "queue" "queue_key" "max-in-flight" "max_in_flight" "poll-interval" "poll_interval" "pagination-page-size" "page_size" "pagination-depth-limit" "max_pages" "reservation-expiry-seconds" "reservation_expiry_seconds" "job-cancel-checker-poll-interval" "state_check_interval" "prometheus-port" "metrics_port" }}
{{- $durations := list "poll-interval" "job-cancel-checker-poll-interval" }}
{{- $dropped := list "enable-queue-pause" "job-creation-concurrency" "query-reset-interval" "work-queue-limit" "enable-completion-watcher" "empty-job-grace-period" "http-timeout" "profiler-address" "log-format" "log-level" "log-http-payloads" "debug" "no-color" "graphql-endpoint" "integration-test-buildkite-token" }}
{{- $flatTable := dict }}
{{- range $name, $value := .Values.config }}
{{- if or (eq $name "stack") (eq $name "kubernetes") (has $name $dropped) }}
{{- else if eq $name "tags" }}
{{- $tags := deepCopy ($stack.tags | default dict) }}
{{- range $value }}
{{- $tag := toString . }}
{{- if contains "=" $tag }}
{{- $k := first (splitList "=" $tag) }}
{{- $v := trimPrefix (printf "%s=" $k) $tag }}
{{- if eq $k "queue" }}
{{- if not (hasKey $.Values.config "queue") }}{{ $_ := set $stack "queue_key" $v }}{{ end }}
{{- else }}{{ $_ := set $tags $k $v }}{{ end }}
{{- end }}
{{- end }}
{{- $_ := set $stack "tags" $tags }}
{{- else if hasKey $toStack $name }}
{{- if has $name $durations }}
{{- $value = include "stacksapi.seconds" (dict "key" $name "value" $value) | float64 }}
{{- end }}
{{- $_ := set $stack (get $toStack $name) $value }}
{{- else }}
{{- $_ := set $kube $name $value }}
{{- $_ := set $flatTable $name $value }}
{{- end }}
{{- end }}
{{- if or (get $flatTable "resource-classes") (get $flatTable "resource_classes") }}
{{- $_ := set $stack "tags" (merge (deepCopy ($stack.tags | default dict)) (dict "resource_class" "*")) }}
{{- end }}
{{- toYaml (dict "stack" $stack "kubernetes" $kube) }}
{{- end }}

{{/* Seconds from a number or a Go duration string ("2s", "1m30s", "500ms"). */}}
{{- define "stacksapi.seconds" -}}
{{- $v := .value }}
{{- if kindIs "string" $v }}
{{- if not (regexMatch "^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$" $v) }}
{{- fail (printf "config.%s: must be seconds or a duration such as 30s, 10m, 1h (got %q)" .key $v) }}
{{- end }}
{{- $total := 0.0 }}
{{- $units := dict "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 }}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ms|s|m|h)" $v -1 }}
{{- $n := regexFind "^[0-9]+(\\.[0-9]+)?" . | float64 }}
{{- $total = addf $total (mulf $n (get $units (regexReplaceAll "^[0-9]+(\\.[0-9]+)?" . ""))) }}
{{- end }}
{{- $total }}
{{- else }}
{{- $v }}
{{- end }}
{{- end }}

{{/*
stack.toml from the config (above). Helm reads every number in a values file as a float, so a
whole number is written back as an integer ("max_in_flight = 20", not "20.0"); strings are
always quoted on one line by toToml, so only bare numbers at the end of a line are touched.
*/}}
{{- define "stacksapi.stackToml" -}}
{{- $toml := toToml (include "stacksapi.config" . | fromYaml) }}
{{- regexReplaceAll "(?m)^(\\s*[A-Za-z0-9_\"-]+ = -?[0-9]+)\\.0$" $toml "${1}" }}
{{- end }}

{{/* The stack key of the last replica, checked against the API's 80-character limit. */}}
{{- define "stacksapi.checkKey" -}}
{{- $prefix := toString (include "stacksapi.config" . | fromYaml).stack.key }}
{{- if .Values.perReplicaKey }}
{{- $longest := printf "%s-%s-%d" $prefix (include "stacksapi.fullname" .) (sub (int .Values.replicas) 1) }}
{{- if gt (len $longest) 80 }}
{{- fail (printf "config.stack.key: %q plus the pod name makes stack keys of %d characters (at most 80): shorten the key or the release name" $prefix (len $longest)) }}
{{- end }}
{{- else if gt (int .Values.replicas) 1 }}
{{- fail "replicas: more than one replica needs perReplicaKey: true (two controllers must never share a stack key)" }}
{{- end }}
{{- end }}

{{/* The namespace the Jobs are created in: kubernetes.namespace, else the release's. */}}
{{- define "stacksapi.jobNamespace" -}}
{{- (include "stacksapi.config" . | fromYaml).kubernetes.namespace | default .Release.Namespace }}
{{- end }}

{{/*
Where the controller's token is: clusterToken, or agent-stack-k8s's values (agentStackSecret, an
existing Secret with the token under BUILDKITE_AGENT_TOKEN; agentToken, the token itself: a
cluster's agent token is the cluster token the Stacks API takes). YAML, for fromYaml.
*/}}
{{- define "stacksapi.clusterToken" -}}
{{- $token := deepCopy .Values.clusterToken }}
{{- if .Values.agentStackSecret }}
{{- $_ := set $token "secretName" .Values.agentStackSecret }}
{{- $_ := set $token "secretKey" "BUILDKITE_AGENT_TOKEN" }}
{{- $_ := set $token "value" "" }}
{{- else if and .Values.agentToken (not $token.value) }}
{{- $_ := set $token "value" .Values.agentToken }}
{{- end }}
{{- toYaml $token }}
{{- end }}
