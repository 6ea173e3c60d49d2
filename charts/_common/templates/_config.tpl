{{- /*
Configuration: the ConfigMap made from .Values.env, the Secret made from .Values.secretEnv, how
the container loads them, and the checksum that rolls the pods when either changes.
*/ -}}

{{/*
Data of the ConfigMap <name>-config: every entry of .Values.env, as strings.
{{ include "common.config.configMapData" . }}
*/}}
{{- define "common.config.configMapData" -}}
{{- range $key, $value := (.Values.env | default dict) }}
{{ $key }}: {{ toString $value | quote }}
{{- end }}
{{- end -}}

{{/*
Whether the chart renders its own Secret: .Values.secretEnv has entries and no
.Values.existingSecret is named. Renders "true" or nothing.
{{ if include "common.config.ownsSecret" . }}...{{ end }}
*/}}
{{- define "common.config.ownsSecret" -}}
{{- if and .Values.secretEnv (not .Values.existingSecret) -}}
true
{{- end -}}
{{- end -}}

{{/*
Data of the Secret <name>-secret: every entry of .Values.secretEnv, base64-encoded. Empty when
the chart does not render its own Secret.
{{ include "common.config.secretData" . }}
*/}}
{{- define "common.config.secretData" -}}
{{- if include "common.config.ownsSecret" . }}
{{- range $key, $value := .Values.secretEnv }}
{{ $key }}: {{ toString $value | b64enc | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
Name of the Secret the container loads: .Values.existingSecret, else <name>-secret when the
chart renders one, else nothing.
{{ include "common.config.secretName" . }}
*/}}
{{- define "common.config.secretName" -}}
{{- if .Values.existingSecret -}}
{{- .Values.existingSecret -}}
{{- else if include "common.config.ownsSecret" . -}}
{{- include "common.meta.suffixed" (dict "context" . "suffix" "secret") -}}
{{- end -}}
{{- end -}}

{{/*
envFrom entries of the container. The Secret comes after the ConfigMap, and Kubernetes lets the
last source win, so a Secret key (a MONGO_URL with credentials) overrides the ConfigMap entry of
the same name (the credential-free default).
{{ include "common.config.envFrom" . }}
*/}}
{{- define "common.config.envFrom" -}}
{{- if .Values.env }}
- configMapRef:
    name: {{ include "common.meta.suffixed" (dict "context" . "suffix" "config") }}
{{- end }}
{{- with include "common.config.secretName" . }}
- secretRef:
    name: {{ . }}
{{- end }}
{{- end -}}

{{/*
Value of the checksum/config pod annotation: sha256 of the rendered ConfigMap data, the rendered
Secret data, the name of an existing Secret and, when there are any, the rendered configFiles,
computed from values so that any change of configuration rolls the pods.
{{ include "common.config.checksum" . }}
*/}}
{{- define "common.config.checksum" -}}
{{- $parts := list (include "common.config.configMapData" .) (include "common.config.secretData" .) (toString (.Values.existingSecret | default "")) -}}
{{- with include "common.config.filesData" . -}}
{{- $parts = append $parts . -}}
{{- end -}}
{{- join "\n---\n" $parts | sha256sum -}}
{{- end -}}

{{/*
Data of the ConfigMap <name>-files: each entry of .Values.configFiles (name -> {mountPath,
content}) under its name, the content rendered with tpl so it can use values (an nginx site that
proxies to {{ .Values.env.CATALOGUE_HOST }}).
{{ include "common.config.filesData" . }}
*/}}
{{- define "common.config.filesData" -}}
{{- range $name, $file := (.Values.configFiles | default dict) }}
{{ $name }}: {{ tpl (toString $file.content) $ | quote }}
{{- end }}
{{- end -}}

{{/*
ConfigMap <name>-config from .Values.env, and ConfigMap <name>-files from .Values.configFiles
(the files the container reads in place of ones its image would write at start); each renders
nothing when its value is empty.
{{- include "common.config.configMap" . }}
*/}}
{{- define "common.config.configMap" -}}
{{- include "common.check.values" . -}}
{{- if .Values.env }}
apiVersion: v1
kind: ConfigMap
metadata:
  {{- include "common.meta.objectMeta" (dict "context" . "name" (include "common.meta.suffixed" (dict "context" . "suffix" "config"))) | nindent 2 }}
data:
  {{- include "common.config.configMapData" . | trim | nindent 2 }}
{{- end }}
{{- if .Values.configFiles }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  {{- include "common.meta.objectMeta" (dict "context" . "name" (include "common.meta.suffixed" (dict "context" . "suffix" "files"))) | nindent 2 }}
data:
  {{- include "common.config.filesData" . | trim | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
Secret <name>-secret from .Values.secretEnv; renders nothing when secretEnv is empty or when
.Values.existingSecret names a Secret managed outside the chart.
{{- include "common.config.secret" . }}
*/}}
{{- define "common.config.secret" -}}
{{- include "common.check.values" . -}}
{{- if include "common.config.ownsSecret" . }}
apiVersion: v1
kind: Secret
metadata:
  {{- include "common.meta.objectMeta" (dict "context" . "name" (include "common.meta.suffixed" (dict "context" . "suffix" "secret"))) | nindent 2 }}
type: Opaque
data:
  {{- include "common.config.secretData" . | trim | nindent 2 }}
{{- end }}
{{- end -}}
