{{- /*
Names and labels.

Template names in this library never reuse an area of Bitnami's library chart (also named
"common" and loaded in the same umbrella render, where named templates are global): this file
is the "meta" area.
*/ -}}

{{/*
Name of every resource of the service and the host name other services use: .Values.name, or
the chart name. It is not prefixed with the release name, so renders do not depend on it.
{{ include "common.meta.name" . }}
*/}}
{{- define "common.meta.name" -}}
{{- $name := .Values.name | default .Chart.Name | toString -}}
{{- /* The length is checked apart from the pattern: sprig compiles the pattern on every call
(dozens per object), and Go expands a counted repetition such as {0,48} into 48 nested copies,
which made this check a twentieth of a whole render. */ -}}
{{- if or (gt (len $name) 50) (not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $name)) -}}
{{- fail (printf "name %q is not valid: use 1 to 50 lower-case letters, digits or '-', starting with a letter (it becomes a Service name and a DNS label)" $name) -}}
{{- end -}}
{{- $name -}}
{{- end -}}

{{/*
Full name of the service's main objects (Deployment, Service, ...). The same as
common.meta.name on purpose: a fixed name is how other services find this one.
{{ include "common.meta.fullname" . }}
*/}}
{{- define "common.meta.fullname" -}}
{{- include "common.meta.name" . -}}
{{- end -}}

{{/*
Name with a suffix, for the objects a service has several of.
{{ include "common.meta.suffixed" (dict "context" . "suffix" "config") }}  => catalogue-config
*/}}
{{- define "common.meta.suffixed" -}}
{{- printf "%s-%s" (include "common.meta.name" .context) .suffix -}}
{{- end -}}

{{/*
Value of the helm.sh/chart label: chart name and version.
{{ include "common.meta.chart" . }}
*/}}
{{- define "common.meta.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Value of the app.kubernetes.io/version label: the image tag actually deployed, so a hotfix tag
set with --set shows on every object.
{{ include "common.meta.version" . }}
*/}}
{{- define "common.meta.version" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion | toString -}}
{{- regexReplaceAll "[^-A-Za-z0-9_.]" $tag "_" | trunc 63 | trimSuffix "-" | trimSuffix "_" | trimSuffix "." -}}
{{- end -}}

{{/*
Selector labels: name and instance only, because a Deployment's selector is immutable.
{{ include "common.meta.selectorLabels" . }}
*/}}
{{- define "common.meta.selectorLabels" -}}
app.kubernetes.io/name: {{ include "common.meta.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
Standard labels of every object.
{{ include "common.meta.labels" . }}
*/}}
{{- define "common.meta.labels" -}}
{{ include "common.meta.selectorLabels" . }}
app.kubernetes.io/version: {{ include "common.meta.version" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: {{ .Values.component | default "backend" }}
app.kubernetes.io/part-of: {{ .Values.partOf | default "robot-shop" }}
helm.sh/chart: {{ include "common.meta.chart" . }}
{{- end -}}

{{/*
Object metadata: name, namespace and standard labels. Pass "name" to override the name and
"annotations" (a map) to add annotations.
{{ include "common.meta.objectMeta" (dict "context" . "name" "catalogue-config") }}
*/}}
{{- define "common.meta.objectMeta" -}}
name: {{ .name | default (include "common.meta.fullname" .context) }}
namespace: {{ .context.Release.Namespace }}
labels:
  {{- include "common.meta.labels" .context | nindent 2 }}
{{- with .annotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
