{{- /*
Configuration: the ConfigMap made from .Values.env; the service's Secret, from one of three
sources (.Values.secretEnv rendered here, .Values.existingSecret made elsewhere, or
.Values.externalSecret: an ExternalSecret from which the External Secrets Operator makes it);
how the container loads them, and the checksum that rolls the pods when any changes.
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
Name of the Secret the container loads: .Values.existingSecret, else <name>-credentials when
.Values.externalSecret has data (the Secret the External Secrets Operator makes), else
<name>-secret when the chart renders one, else nothing.
{{ include "common.config.secretName" . }}
*/}}
{{- define "common.config.secretName" -}}
{{- if .Values.existingSecret -}}
{{- .Values.existingSecret -}}
{{- else if include "common.config.externalSecretSpec" . -}}
{{- include "common.meta.suffixed" (dict "context" . "suffix" "credentials") -}}
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
Secret data, the name of an existing Secret and, when there are any, the rendered configFiles and
the ExternalSecret's spec, computed from values so that any change of configuration rolls the
pods. A value rotated in the secret store changes none of these: the operator updates the Secret
and the pods read it at their next start.
{{ include "common.config.checksum" . }}
*/}}
{{- define "common.config.checksum" -}}
{{- $parts := list (include "common.config.configMapData" .) (include "common.config.secretData" .) (toString (.Values.existingSecret | default "")) -}}
{{- with include "common.config.filesData" . -}}
{{- $parts = append $parts . -}}
{{- end -}}
{{- with include "common.config.externalSecretSpec" . -}}
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

{{/*
Spec of the ExternalSecret <name>-credentials, from .Values.externalSecret: the store (its own
secretStoreRef, else global.externalSecrets.secretStoreRef, the one store of the environment),
the refresh interval (its own, else the global one, else 1h), the target Secret and one data
entry per key of externalSecret.data (the environment variable), in key order. Empty when
externalSecret.data has no entries.
{{ include "common.config.externalSecretSpec" . }}
*/}}
{{- define "common.config.externalSecretSpec" -}}
{{- $external := .Values.externalSecret | default dict -}}
{{- if $external.data -}}
{{- $global := ((.Values.global | default dict).externalSecrets) | default dict -}}
{{- $store := $external.secretStoreRef | default dict -}}
{{- if not $store.name -}}
{{- $store = $global.secretStoreRef | default dict -}}
{{- end -}}
secretStoreRef:
  kind: {{ $store.kind | default "SecretStore" }}
  name: {{ $store.name | quote }}
refreshInterval: {{ $external.refreshInterval | default $global.refreshInterval | default "1h" | quote }}
target:
  name: {{ include "common.meta.suffixed" (dict "context" . "suffix" "credentials") }}
  creationPolicy: Owner
data:
{{- range $key, $ref := $external.data }}
{{- if $ref }}
  - secretKey: {{ $key }}
    remoteRef:
      key: {{ $ref.key | quote }}
      {{- with $ref.property }}
      property: {{ . | quote }}
      {{- end }}
      {{- with $ref.version }}
      version: {{ . | quote }}
      {{- end }}
{{- end }}
{{- end }}
{{- end -}}
{{- end -}}

{{/*
ExternalSecret <name>-credentials (external-secrets.io/v1) from .Values.externalSecret: the
External Secrets Operator reads each key of externalSecret.data from the environment's store and
writes the Secret <name>-credentials, which the container loads like any other. Renders nothing
when externalSecret.data is empty. Secret values never pass through Helm or git.
{{- include "common.config.externalSecret" . }}
*/}}
{{- define "common.config.externalSecret" -}}
{{- include "common.check.values" . -}}
{{- with include "common.config.externalSecretSpec" . }}
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  {{- include "common.meta.objectMeta" (dict "context" $ "name" (include "common.meta.suffixed" (dict "context" $ "suffix" "credentials"))) | nindent 2 }}
spec:
  {{- . | nindent 2 }}
{{- end }}
{{- end -}}
