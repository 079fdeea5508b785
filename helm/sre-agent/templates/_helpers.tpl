{{/* Names, labels and the pieces every workload shares. */}}

{{- define "sre-agent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sre-agent.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "sre-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sre-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "sre-agent.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "sre-agent.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sre-agent
{{- end }}

{{- define "sre-agent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sre-agent.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sre-agent.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* StatefulSet when several replicas run (each gets its own ordinal and state) or sharding is on. */}}
{{- define "sre-agent.statefulset" -}}
{{- if or (gt (int .Values.replicas) 1) .Values.sharding.enabled }}true{{ end }}
{{- end }}

{{- define "sre-agent.sqliteVolume" -}}
{{- if and (eq .Values.state.type "sqlite") .Values.state.persistence.enabled }}true{{ end }}
{{- end }}

{{/* The agent's config: the values' `config:` with the two keys the pod layout fixes. */}}
{{- define "sre-agent.config" -}}
{{- $cfg := deepCopy .Values.config }}
{{- $agent := dict }}
{{- if hasKey $cfg "agent" }}{{ $agent = get $cfg "agent" }}{{ end }}
{{- $_ := set $agent "listen" "0.0.0.0:9108" }}
{{- $_ := set $agent "state_dir" "/var/lib/sre-agent" }}
{{- if eq .Values.state.type "postgres" }}
{{- /* one shared store: the DSN from the Secret, and how the replicas share the checks */}}
{{- if not (hasKey $agent "state") }}{{ $_ := set $agent "state" "${SRE_AGENT_STATE_DSN}" }}{{ end }}
{{- if .Values.sharding.enabled }}
{{- if not (hasKey $agent "shard") }}{{ $_ := set $agent "shard" (dict "index" "${SRE_AGENT_SHARD_ORDINAL}" "count" "${SRE_AGENT_SHARD_COUNT}") }}{{ end }}
{{- else }}
{{- $replica := get $agent "replica" | default dict }}
{{- if not (hasKey $replica "name") }}{{ $_ := set $replica "name" "${SRE_AGENT_POD_NAME}" }}{{ end }}
{{- $_ := set $agent "replica" $replica }}
{{- end }}
{{- end }}
{{- $_ := set $cfg "agent" $agent }}
{{- toYaml $cfg }}
{{- end }}

{{/* Pod Security "restricted", for the pod and for its container. */}}
{{- define "sre-agent.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65534
runAsGroup: 65534
fsGroup: 65534
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "sre-agent.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65534
runAsGroup: 65534
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The pod template of the Deployment and of the StatefulSet. */}}
{{- define "sre-agent.podTemplate" -}}
metadata:
  labels:
    {{- include "sre-agent.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include "sre-agent.config" . | sha256sum }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "sre-agent.serviceAccountName" . }}
  automountServiceAccountToken: {{ .Values.serviceAccount.automountToken }}
  securityContext:
    {{- include "sre-agent.podSecurityContext" . | nindent 4 }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- range . }}
    - name: {{ . }}
    {{- end }}
  {{- end }}
  containers:
    - name: sre-agent
      image: {{ include "sre-agent.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      env:
        - name: SRE_AGENT_CONFIG
          value: /etc/sre-agent/config/config.yaml
        - name: SRE_AGENT_POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        {{- if include "sre-agent.statefulset" . }}
        # This replica's ordinal (0..count-1) and the replica count, for sharding the checks.
        - name: SRE_AGENT_SHARD_ORDINAL
          valueFrom:
            fieldRef:
              fieldPath: metadata.labels['apps.kubernetes.io/pod-index']
        - name: SRE_AGENT_SHARD_COUNT
          value: {{ .Values.replicas | int | quote }}
        {{- end }}
        {{- if eq .Values.state.type "postgres" }}
        # The PostgreSQL store's DSN, from an existing Secret: reference it in config as ${SRE_AGENT_STATE_DSN}.
        - name: SRE_AGENT_STATE_DSN
          valueFrom:
            secretKeyRef:
              name: {{ .Values.state.postgres.existingSecret }}
              key: {{ .Values.state.postgres.dsnKey }}
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with .Values.secrets.envFrom }}
      envFrom:
        {{- range . }}
        - secretRef:
            name: {{ . }}
        {{- end }}
      {{- end }}
      ports:
        - name: http
          containerPort: 9108
          protocol: TCP
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
        {{- toYaml .Values.probes.liveness | nindent 8 }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        {{- toYaml .Values.probes.readiness | nindent 8 }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- include "sre-agent.containerSecurityContext" . | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/sre-agent/config
          readOnly: true
        - name: state
          mountPath: /var/lib/sre-agent
        - name: tmp
          mountPath: /tmp
        {{- range $i, $file := .Values.secrets.files }}
        - name: secret-file-{{ $i }}
          mountPath: {{ $file.mountPath | default (printf "/etc/sre-agent/secrets/%s" $file.secret) }}
          readOnly: true
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "sre-agent.fullname" . }}
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
    {{- if not (and (include "sre-agent.sqliteVolume" .) (include "sre-agent.statefulset" .)) }}
    - name: state
      {{- if include "sre-agent.sqliteVolume" . }}
      persistentVolumeClaim:
        claimName: {{ .Values.state.persistence.existingClaim | default (printf "%s-state" (include "sre-agent.fullname" .)) }}
      {{- else }}
      emptyDir:
        sizeLimit: 256Mi
      {{- end }}
    {{- end }}
    {{- range $i, $file := .Values.secrets.files }}
    - name: secret-file-{{ $i }}
      secret:
        secretName: {{ $file.secret }}
        defaultMode: 0440
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* Rules across several values, with messages that say what to change (the schema checks each value). */}}
{{- define "sre-agent.validate" -}}
{{- $agent := get .Values.config "agent" | default dict }}
{{- range $key, $fixed := dict "listen" "0.0.0.0:9108" "state_dir" "/var/lib/sre-agent" }}
{{- if hasKey $agent $key }}
{{- fail (printf "config.agent.%s is set by the chart (%s), which the probes, the Service and the volumes rely on: remove it" $key $fixed) }}
{{- end }}
{{- end }}
{{- if and (include "sre-agent.statefulset" .) (eq .Values.state.type "sqlite") }}
{{- fail (printf "replicas: %d / sharding.enabled: %v with state.type sqlite would run every check on every replica and alert from each: replicas share the checks only through one PostgreSQL store: set state.type=postgres (live membership, or sharding.enabled for static shards), or replicas: 1 and sharding.enabled false" (int .Values.replicas) .Values.sharding.enabled) }}
{{- end }}
{{- if and (eq .Values.state.type "postgres") (not .Values.state.postgres.existingSecret) }}
{{- fail "state.type postgres needs state.postgres.existingSecret: the name of an existing Secret holding the DSN (key state.postgres.dsnKey)" }}
{{- end }}
{{- if and (include "sre-agent.statefulset" .) .Values.state.persistence.existingClaim }}
{{- fail "state.persistence.existingClaim is one volume, but a StatefulSet (replicas > 1 or sharding.enabled) gives each replica its own: leave existingClaim empty" }}
{{- end }}
{{- end }}
