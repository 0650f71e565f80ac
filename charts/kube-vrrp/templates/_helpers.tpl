{{/* Names, labels and the image reference shared by every template. */}}

{{- define "kube-vrrp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: object name prefix, at most 50 characters so that "-operator" and the
like still fit in 63. */}}
{{- define "kube-vrrp.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "kube-vrrp.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object the chart creates. */}}
{{- define "kube-vrrp.labels" -}}
helm.sh/chart: {{ include "kube-vrrp.chart" . }}
app.kubernetes.io/name: {{ include "kube-vrrp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kube-vrrp
{{- end -}}

{{/* Selector of the operator pods (stable across upgrades: never add to it). */}}
{{- define "kube-vrrp.operatorSelectorLabels" -}}
app.kubernetes.io/name: {{ include "kube-vrrp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* The labels the operator puts on every daemon Pod, ConfigMap and Secret. Fixed by the
operator (vrrp_operator/objects.py, DAEMON_LABELS), not by nameOverride: the monitors and
the metrics Service select daemon pods with them. tests/chart checks the two agree. */}}
{{- define "kube-vrrp.daemonSelectorLabels" -}}
app.kubernetes.io/name: kube-vrrp
app.kubernetes.io/component: daemon
{{- end -}}

{{- define "kube-vrrp.operatorServiceAccountName" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (printf "%s-operator" (include "kube-vrrp.fullname" .)) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- required "operator.serviceAccount.name is required when operator.serviceAccount.create is false" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "kube-vrrp.daemonServiceAccountName" -}}
{{- if .Values.daemon.serviceAccount.create -}}
{{- default (printf "%s-daemon" (include "kube-vrrp.fullname" .)) .Values.daemon.serviceAccount.name -}}
{{- else -}}
{{- required "daemon.serviceAccount.name is required when daemon.serviceAccount.create is false" .Values.daemon.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "kube-vrrp.peeringName" -}}
{{- default (include "kube-vrrp.fullname" .) .Values.operator.peering.name -}}
{{- end -}}

{{/* repository:tag, or repository@digest when a digest is given. */}}
{{- define "kube-vrrp.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Value combinations the schema cannot express with a readable message. */}}
{{- define "kube-vrrp.validate" -}}
{{- if and (gt (int .Values.operator.replicas) 1) (not .Values.operator.peering.enabled) -}}
{{- fail (printf "operator.replicas=%d needs operator.peering.enabled=true: without kopf peering every replica would act on its own (set replicas to 1, or enable peering)" (int .Values.operator.replicas)) -}}
{{- end -}}
{{- if and .Values.metrics.podMonitor.enabled .Values.metrics.serviceMonitor.enabled -}}
{{- fail "metrics.podMonitor.enabled and metrics.serviceMonitor.enabled are both true: each daemon would be scraped twice; enable one of them" -}}
{{- end -}}
{{- end -}}
