{{/* Names, labels and the facts several templates derive from values. */}}

{{- define "pullthrough.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "pullthrough.fullname" -}}
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

{{- define "pullthrough.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object of the release. */}}
{{- define "pullthrough.labels" -}}
helm.sh/chart: {{ include "pullthrough.chart" . }}
{{ include "pullthrough.instanceLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "pullthrough.instanceLabels" -}}
app.kubernetes.io/name: {{ include "pullthrough.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The server's pods (and its Service, for the ServiceMonitor); Redis has its own. */}}
{{- define "pullthrough.selectorLabels" -}}
{{ include "pullthrough.instanceLabels" . }}
app.kubernetes.io/component: server
{{- end }}

{{- define "pullthrough.redisSelectorLabels" -}}
{{ include "pullthrough.instanceLabels" . }}
app.kubernetes.io/component: redis
{{- end }}

{{- define "pullthrough.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "pullthrough.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "pullthrough.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The container port: config.server.port. */}}
{{- define "pullthrough.port" -}}
{{- dig "server" "port" 5000 .Values.config | int }}
{{- end }}

{{/* HTTPS when config.server.tls is set, else HTTP (probes, ServiceMonitor, NOTES). */}}
{{- define "pullthrough.scheme" -}}
{{- if dig "server" "tls" "" .Values.config }}HTTPS{{ else }}HTTP{{ end }}
{{- end }}

{{/* Where the cache volume is mounted: config.storage.path. */}}
{{- define "pullthrough.storagePath" -}}
{{- dig "storage" "path" "" .Values.config }}
{{- end }}

{{/* The directory upstream passwordFile entries point into. */}}
{{- define "pullthrough.credentialsDir" -}}
/etc/pullthrough/credentials
{{- end }}

{{- define "pullthrough.credentialsSecret" -}}
{{- default (printf "%s-credentials" (include "pullthrough.fullname" .)) .Values.credentials.existingSecret }}
{{- end }}

{{/* "true" when the pod mounts a credentials Secret. */}}
{{- define "pullthrough.hasCredentials" -}}
{{- if or .Values.credentials.existingSecret .Values.credentials.passwords }}true{{ end }}
{{- end }}

{{- define "pullthrough.redisName" -}}
{{- printf "%s-redis" (include "pullthrough.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* "true" when pullthrough uses Redis (any of the three sources). */}}
{{- define "pullthrough.usesRedis" -}}
{{- if or .Values.redis.url .Values.redis.existingSecret .Values.redis.deploy.enabled }}true{{ end }}
{{- end }}

{{/* "true" when the cache volume can be mounted by pods on several nodes at once. */}}
{{- define "pullthrough.sharedVolume" -}}
{{- if and .Values.persistence.enabled (has "ReadWriteMany" .Values.persistence.accessModes) }}true{{ end }}
{{- end }}

{{/*
Refuses values that would deploy something broken, each with the fix. Included
by the Deployment, so `helm install` and `helm template` fail before anything
is applied.
*/}}
{{- define "pullthrough.validate" -}}
{{- $replicas := int .Values.replicaCount }}
{{- if .Values.autoscaling.enabled }}
{{- $replicas = int .Values.autoscaling.maxReplicas }}
{{- if lt $replicas (int .Values.autoscaling.minReplicas) }}
{{- fail "autoscaling.maxReplicas is below autoscaling.minReplicas." }}
{{- end }}
{{- end }}
{{- if and (gt $replicas 1) (not (include "pullthrough.usesRedis" .)) }}
{{- fail (printf "replicaCount is %d, but several replicas need Redis for metadata: the embedded store locks its volume and a second replica would not start. Set redis.url, redis.existingSecret or redis.deploy.enabled=true." $replicas) }}
{{- end }}
{{- $inBucket := and (dig "storage" "s3" "" .Values.config) (not .Values.persistence.enabled) }}
{{- if and (gt $replicas 1) (not (include "pullthrough.sharedVolume" .)) (not $inBucket) }}
{{- fail (printf "replicaCount is %d, but several replicas need one cache volume they all mount read-write: set persistence.enabled=true and persistence.accessModes to [ReadWriteMany], with a storage class that provides it (NFS, CephFS, EFS, Azure Files, Filestore, ...), or keep the blobs in a bucket (config.storage.s3) with persistence.enabled=false (each pod's emptyDir then holds its downloads in progress)." $replicas) }}
{{- end }}
{{- $sources := 0 }}
{{- range (list .Values.redis.url .Values.redis.existingSecret .Values.redis.deploy.enabled) }}
{{- if . }}{{ $sources = add1 $sources }}{{ end }}
{{- end }}
{{- if gt $sources 1 }}
{{- fail "Redis is set more than once: use only one of redis.url, redis.existingSecret and redis.deploy.enabled." }}
{{- end }}
{{- $redisConfig := dig "metadata" "redis" dict .Values.config }}
{{- if hasKey $redisConfig "url" }}
{{- fail "config.metadata.redis.url is set: set redis.url (or redis.existingSecret) instead, so the URL and its password stay in a Secret." }}
{{- end }}
{{- if and $redisConfig (not (include "pullthrough.usesRedis" .)) }}
{{- fail "config.metadata.redis is set but no Redis is: set redis.url, redis.existingSecret or redis.deploy.enabled=true, or remove config.metadata.redis." }}
{{- end }}
{{- $path := include "pullthrough.storagePath" . }}
{{- if not (hasPrefix "/" $path) }}
{{- fail (printf "config.storage.path is %q: it must be an absolute path (the volume is mounted there), like /var/lib/pullthrough." $path) }}
{{- end }}
{{- if has (dig "server" "host" "0.0.0.0" .Values.config) (list "127.0.0.1" "localhost" "::1") }}
{{- fail "config.server.host is a loopback address: the kubelet's probes and the Service could not reach the pod. Use 0.0.0.0 (or ::)." }}
{{- end }}
{{- $credentialsDir := include "pullthrough.credentialsDir" . }}
{{- $pools := concat (dig "docker" "registries" list .Values.config) (dig "pypi" "indexes" list .Values.config) }}
{{- range $pool := $pools }}
{{- range $upstream := (get $pool "upstreams" | default list) }}
{{- $file := get $upstream "passwordFile" | default "" }}
{{- if hasPrefix (printf "%s/" $credentialsDir) $file }}
{{- $key := trimPrefix (printf "%s/" $credentialsDir) $file }}
{{- if not (include "pullthrough.hasCredentials" $) }}
{{- fail (printf "%s (upstream %s) reads %s, but no credentials Secret is mounted: set credentials.existingSecret or credentials.passwords.%s." (get $pool "name") (get $upstream "url") $file $key) }}
{{- end }}
{{- if and (not $.Values.credentials.existingSecret) (not (hasKey $.Values.credentials.passwords $key)) }}
{{- fail (printf "%s (upstream %s) reads %s, but credentials.passwords has no key %q." (get $pool "name") (get $upstream "url") $file $key) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
