{{- /*
Access: the service's ServiceAccount. No token is mounted unless
serviceAccount.automountToken is true: Robot-Shop services never call the Kubernetes API.
*/ -}}

{{/*
Name of the ServiceAccount the pods run as: serviceAccount.name, else <name> when the chart
creates one, else "default".
{{ include "common.access.serviceAccountName" . }}
*/}}
{{- define "common.access.serviceAccountName" -}}
{{- $sa := .Values.serviceAccount | default dict -}}
{{- if $sa.create -}}
{{- $sa.name | default (include "common.meta.fullname" .) -}}
{{- else -}}
{{- $sa.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/*
ServiceAccount; renders nothing unless serviceAccount.create.
{{- include "common.access.serviceAccount" . }}
*/}}
{{- define "common.access.serviceAccount" -}}
{{- include "common.check.values" . -}}
{{- $sa := .Values.serviceAccount | default dict -}}
{{- if $sa.create }}
apiVersion: v1
kind: ServiceAccount
metadata:
  {{- include "common.meta.objectMeta" (dict "context" . "name" (include "common.access.serviceAccountName" .) "annotations" $sa.annotations) | nindent 2 }}
automountServiceAccountToken: {{ $sa.automountToken | default false }}
{{- end }}
{{- end -}}
