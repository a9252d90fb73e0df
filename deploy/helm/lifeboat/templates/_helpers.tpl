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

{{- define "lifeboat.external" -}}
{{- if eq .Values.distribution "external" }}true{{ end -}}
{{- end -}}

{{/* Where the distribution keeps its server state: k3s and RKE2 share k3s's layout. */}}
{{- define "lifeboat.rancherDir" -}}
/var/lib/rancher/{{ .Values.distribution }}
{{- end -}}

{{/* The nodes the agents run on: the value, or the nodes that run an etcd member. kubeadm's
stacked etcd runs on its control-plane nodes (label value ""); k3s and RKE2 label the servers
with embedded etcd node-role.kubernetes.io/etcd: "true" (with split roles, control-plane-only
servers have no member to back up). A selector matches the value exactly. */}}
{{- define "lifeboat.nodeSelector" -}}
{{- if .Values.nodeSelector -}}
{{ toYaml .Values.nodeSelector }}
{{- else if eq .Values.distribution "kubeadm" -}}
node-role.kubernetes.io/control-plane: ""
{{- else -}}
node-role.kubernetes.io/etcd: "true"
{{- end -}}
{{- end -}}

{{/* The taints of control-plane and etcd nodes: kubeadm's, and those k3s and RKE2 servers are
given (RKE2's split roles, the CriticalAddonsOnly taint both distributions recommend). */}}
{{- define "lifeboat.tolerations" -}}
{{- if .Values.tolerations -}}
{{ toYaml .Values.tolerations }}
{{- else -}}
- {key: node-role.kubernetes.io/control-plane, operator: Exists, effect: NoSchedule}
- {key: node-role.kubernetes.io/master, operator: Exists, effect: NoSchedule}
{{- if ne .Values.distribution "kubeadm" }}
- {key: node-role.kubernetes.io/etcd, operator: Exists, effect: NoExecute}
- {key: CriticalAddonsOnly, operator: Exists}
{{- end }}
{{- end -}}
{{- end -}}

{{/* The node's directories the agent reads, mounted read-only at the same paths. k3s and RKE2:
the whole server directory (tls/, cred/, token; its db/ holds nothing the etcd client could not
read anyway, and one mount does not depend on the layout of a version). */}}
{{- define "lifeboat.hostPaths" -}}
{{- if eq .Values.distribution "kubeadm" -}}
- {name: kubernetes, path: /etc/kubernetes, type: Directory}
- {name: kubelet-config, path: /var/lib/kubelet/config.yaml, type: File}
{{- else if ne .Values.distribution "external" -}}
- {name: rancher-server, path: {{ include "lifeboat.rancherDir" . }}/server, type: Directory}
- {name: rancher-config, path: /etc/rancher/{{ .Values.distribution }}, type: Directory}
{{- end -}}
{{- end -}}

{{/* The agent's `etcd:` section. */}}
{{- define "lifeboat.etcdSection" -}}
{{- if .Values.agent.etcd -}}
{{ toJson .Values.agent.etcd }}
{{- else if include "lifeboat.external" . -}}
{{- $e := required "distribution: external needs etcd.endpoints" .Values.etcd.endpoints -}}
{{- $s := required "distribution: external needs etcd.clientSecret (ca.crt, tls.crt, tls.key)" .Values.etcd.clientSecret -}}
{{ toJson (dict "endpoints" $e "cacert" "/etc/lifeboat-etcd/ca.crt" "cert" "/etc/lifeboat-etcd/tls.crt" "key" "/etc/lifeboat-etcd/tls.key") }}
{{- else -}}
{{ toJson (dict .Values.distribution true) }}
{{- end -}}
{{- end -}}

{{/* The node-local jobs, with the distribution's paths (files: relative to the root /;
directories are taken whole). External etcd has no node of its own to look at. */}}
{{- define "lifeboat.nodeJobs" -}}
{{- if not (include "lifeboat.external" .) }}
{{- $files := .Values.filesJob }}
{{- if $files.enabled }}
{{- $job := dict "name" "pki" "kind" "files" "every" $files.every "root" "/" }}
{{- if $files.include }}
{{- $_ := set $job "include" $files.include }}
{{- else if ne .Values.distribution "kubeadm" }}
{{- $dir := trimPrefix "/" (include "lifeboat.rancherDir" .) }}
{{- $_ := set $job "include" (list (printf "%s/server/tls" $dir) (printf "%s/server/cred" $dir) (printf "%s/server/token" $dir) (printf "etc/rancher/%s" .Values.distribution)) }}
{{- end }}
{{- with $files.exclude }}
{{- $_ := set $job "exclude" . }}
{{- end }}
  - {{ toJson $job }}
{{- end }}
{{- if .Values.certsJob.enabled }}
  - {{ toJson (dict "name" "certs" "kind" "certs" "every" .Values.certsJob.every "root" "/" "warn_days" .Values.certsJob.warnDays) }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The agent's `http:` section: the mounted Secrets. */}}
{{- define "lifeboat.httpSection" -}}
{{- $http := .Values.http -}}
{{- if or $http.bearerToken.existingSecret $http.tls.existingSecret }}
http:
{{- if $http.bearerToken.existingSecret }}
  bearer_token: {file: /etc/lifeboat-http/token}
{{- end }}
{{- if $http.tls.existingSecret }}
  tls: {cert: /etc/lifeboat-http/tls.crt, key: /etc/lifeboat-http/tls.key{{ if $http.tls.clientAuth }}, client_ca: /etc/lifeboat-http/ca.crt{{ end }}}
{{- end }}
{{- end }}
{{- end -}}

{{/* What both configurations share. */}}
{{- define "lifeboat.commonConfig" -}}
{{- $agent := .Values.agent -}}
repository: {{ $agent.repository | quote }}
listen: 127.0.0.1:{{ .Values.port }}
{{- include "lifeboat.httpSection" . }}
{{- if $agent.cluster }}
cluster: {{ $agent.cluster | quote }}
{{- end }}
objectives: {{ toJson $agent.objectives }}
temp_dir: /var/tmp/lifeboat
{{- end -}}

{{/* The configuration of the agents that write backups: no identity, so they cannot read them. */}}
{{- define "lifeboat.agentConfig" -}}
{{- $agent := .Values.agent -}}
{{ include "lifeboat.commonConfig" . }}
leader: {{ $agent.leader }}
leader_check: {{ $agent.leaderCheck }}
leader_ttl: {{ $agent.leaderTtl }}
etcd: {{ include "lifeboat.etcdSection" . }}
jobs:
{{- range $agent.jobs }}
  - {{ toJson . }}
{{- end }}
{{- include "lifeboat.nodeJobs" . }}
{{- end -}}

{{/* The drill agent's configuration: one agent (leader: always), the identity, the drill and
the jobs that need the identity; no etcd: a drill boots its own. */}}
{{- define "lifeboat.drillConfig" -}}
{{ include "lifeboat.commonConfig" . }}
identity_file: /etc/lifeboat-identity/identity.txt
leader: always
{{- with .Values.drill.clusterId }}
cluster_id: {{ . | quote }}
{{- end }}
jobs:
  - {"name": "drill", "kind": "drill", "every": {{ .Values.drill.every | quote }}, "etcd_binary": "/opt/etcd/etcd"}
{{- range .Values.drill.extraJobs }}
  - {{ toJson . }}
{{- end }}
{{- end -}}

{{/* The agent's HTTP Secrets, in one read-only directory. */}}
{{- define "lifeboat.httpVolume" -}}
{{- $http := .Values.http -}}
{{- if or $http.bearerToken.existingSecret $http.tls.existingSecret -}}
- name: http
  projected:
    defaultMode: 0400
    sources:
      {{- if $http.bearerToken.existingSecret }}
      - secret:
          name: {{ $http.bearerToken.existingSecret }}
          items: [{key: {{ $http.bearerToken.key }}, path: token}]
      {{- end }}
      {{- if $http.tls.existingSecret }}
      - secret:
          name: {{ $http.tls.existingSecret }}
          items:
            - {key: tls.crt, path: tls.crt}
            - {key: tls.key, path: tls.key}
            {{- if $http.tls.clientAuth }}
            - {key: ca.crt, path: ca.crt}
            {{- end }}
      {{- end }}
{{- end }}
{{- end -}}

{{- define "lifeboat.httpMount" -}}
{{- if or .Values.http.bearerToken.existingSecret .Values.http.tls.existingSecret -}}
- {name: http, mountPath: /etc/lifeboat-http, readOnly: true}
{{- end }}
{{- end -}}

{{/* Probes: /healthz and /readyz need no credentials, only the scheme. */}}
{{- define "lifeboat.probes" -}}
{{- $scheme := ternary "HTTPS" "HTTP" (not (empty .Values.http.tls.existingSecret)) -}}
livenessProbe:
  httpGet: {path: /healthz, port: http, scheme: {{ $scheme }}}
  periodSeconds: 30
readinessProbe:
  httpGet: {path: /readyz, port: http, scheme: {{ $scheme }}}
  periodSeconds: 15
{{- end -}}

{{/* Pods that need nothing of the node: the Pod Security Standard "restricted". A secret
volume's files are then the fsGroup's, readable by the agent despite mode 0400. */}}
{{- define "lifeboat.restrictedPod" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{- define "lifeboat.restrictedContainer" -}}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities: {drop: [ALL]}
{{- end -}}

{{/* Environment shared by the agents: their address, log level, storage settings. */}}
{{- define "lifeboat.env" -}}
- name: LIFEBOAT_LOG
  value: info
{{- with .Values.env }}
{{ toYaml . }}
{{- end }}
{{- end -}}
