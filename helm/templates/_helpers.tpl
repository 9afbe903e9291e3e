{{/* Names and labels. */}}
{{- define "ssegateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ssegateway.fullname" -}}
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

{{- define "ssegateway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ssegateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ssegateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end }}

{{- define "ssegateway.labels" -}}
helm.sh/chart: {{ include "ssegateway.chart" . }}
{{ include "ssegateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "ssegateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ssegateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ssegateway.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The Secret holding the JWT keys, if any. */}}
{{- define "ssegateway.authSecret" -}}
{{- if .Values.auth.existingSecret }}
{{- .Values.auth.existingSecret }}
{{- else if or .Values.auth.create.hmacSecrets .Values.auth.create.publicKeysPEM .Values.auth.create.jwks }}
{{- printf "%s-auth" (include "ssegateway.fullname" .) }}
{{- end }}
{{- end }}

{{/* The Secret holding the Mercure keys, if the endpoint is on. */}}
{{- define "ssegateway.mercureSecret" -}}
{{- if .Values.mercure.enabled }}
{{- if .Values.mercure.existingSecret }}
{{- .Values.mercure.existingSecret }}
{{- else if .Values.mercure.create.publisherKey }}
{{- printf "%s-mercure" (include "ssegateway.fullname" .) }}
{{- end }}
{{- end }}
{{- end }}

{{/* Whether any token verification is configured (the Mercure keys count). */}}
{{- define "ssegateway.authConfigured" -}}
{{- if or (include "ssegateway.authSecret" .) .Values.auth.jwksURLs (include "ssegateway.mercureSecret" .) }}true{{ end }}
{{- end }}

{{- define "ssegateway.redisName" -}}
{{- printf "%s-redis" (include "ssegateway.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Refuse combinations the schema cannot express. */}}
{{- define "ssegateway.validate" -}}
{{- if and (not .Values.gateway.redisURL) (not .Values.gateway.redisURLSecret.name) (not .Values.redis.enabled) }}
{{- fail "set gateway.redisURL (or gateway.redisURLSecret, or redis.enabled=true to try the chart with a bundled, non-production Redis)" }}
{{- end }}
{{- if and .Values.mercure.enabled (not (include "ssegateway.mercureSecret" .)) }}
{{- fail "mercure.enabled needs its keys: mercure.existingSecret, or mercure.create.publisherKey for a Secret the chart creates" }}
{{- end }}
{{- if and (not (include "ssegateway.authConfigured" .)) (not .Values.gateway.insecureNoAuth) }}
{{- fail "configure token verification (auth.existingSecret, auth.create, auth.jwksURLs or mercure.enabled) or set gateway.insecureNoAuth=true to allow anyone to subscribe and publish" }}
{{- end }}
{{- if le (int .Values.gateway.shutdownTimeoutSeconds) (int .Values.gateway.drainPeriodSeconds) }}
{{- fail "gateway.shutdownTimeoutSeconds must be longer than gateway.drainPeriodSeconds" }}
{{- end }}
{{- if and .Values.tls.enabled .Values.h2c }}
{{- fail "h2c is for plain-text listeners; with tls.enabled HTTP/2 is on already" }}
{{- end }}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) }}
{{- fail "tls.enabled needs tls.secretName, a kubernetes.io/tls Secret" }}
{{- end }}
{{- if and .Values.hpa.enabled (lt (int .Values.hpa.maxReplicas) (int .Values.hpa.minReplicas)) }}
{{- fail "hpa.maxReplicas must be at least hpa.minReplicas" }}
{{- end }}
{{- if and .Values.httpRoute.enabled (not .Values.httpRoute.parentRefs) }}
{{- fail "httpRoute.enabled needs httpRoute.parentRefs: the Gateway(s) to attach to" }}
{{- end }}
{{- end }}

{{- define "ssegateway.redisSelectorLabels" -}}
app.kubernetes.io/name: {{ include "ssegateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: redis
{{- end }}

{{- define "ssegateway.redisLabels" -}}
helm.sh/chart: {{ include "ssegateway.chart" . }}
{{ include "ssegateway.redisSelectorLabels" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}
