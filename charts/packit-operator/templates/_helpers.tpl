{{/* The chart name, shortened to a DNS label. */}}
{{- define "packit-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name: every object, including the cluster-scoped ClusterRole and
ClusterRoleBinding, is named after it, so two releases never collide.
*/}}
{{- define "packit-operator.fullname" -}}
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

{{- define "packit-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "packit-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "packit-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "packit-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "packit-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "packit-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "packit-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Namespaces with PackitDeployments, as JSON: `namespaces` or the release namespace. */}}
{{- define "packit-operator.deploymentNamespaces" -}}
{{- if .Values.namespaces }}
{{- .Values.namespaces | uniq | toJson }}
{{- else }}
{{- list .Release.Namespace | toJson }}
{{- end }}
{{- end }}

{{/* Target-only namespaces, as JSON: `targetNamespaces` minus the deployment namespaces. */}}
{{- define "packit-operator.targetOnlyNamespaces" -}}
{{- $deployments := include "packit-operator.deploymentNamespaces" . | fromJsonArray }}
{{- $targets := list }}
{{- range (.Values.targetNamespaces | uniq) }}
{{- if not (has . $deployments) }}
{{- $targets = append $targets . }}
{{- end }}
{{- end }}
{{- $targets | toJson }}
{{- end }}
