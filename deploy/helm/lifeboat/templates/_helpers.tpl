{{- define "lifeboat.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "lifeboat.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "lifeboat.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lifeboat.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "lifeboat.labels" -}}
{{ include "lifeboat.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "lifeboat.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The agent's configuration file (docs/agent.md). */}}
{{- define "lifeboat.agentConfig" -}}
{{- $agent := .Values.agent -}}
repository: {{ $agent.repository | quote }}
{{- if .Values.identity.existingSecret }}
identity_file: /etc/lifeboat-identity/identity.txt
{{- end }}
listen: 127.0.0.1:{{ .Values.port }}
leader: {{ $agent.leader }}
leader_check: {{ $agent.leaderCheck }}
leader_ttl: {{ $agent.leaderTtl }}
{{- if $agent.cluster }}
cluster: {{ $agent.cluster | quote }}
{{- end }}
objectives: {{ toJson $agent.objectives }}
etcd: {{ toJson $agent.etcd }}
temp_dir: /var/tmp/lifeboat
jobs:
{{- range $agent.jobs }}
  - {{ toJson . }}
{{- end }}
{{- if .Values.drill.enabled }}
  - {"name": "drill", "kind": "drill", "every": {{ .Values.drill.every | quote }}, "etcd_binary": "/opt/etcd/etcd"}
{{- end }}
{{- end -}}
