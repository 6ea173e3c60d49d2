{{- /*
Scaling: the HorizontalPodAutoscaler and the PodDisruptionBudget.
*/ -}}

{{/*
The HPA's floor: max(autoscaling.minReplicas, replicaCount). replicaCount keeps its meaning
when the HPA is on: `--set <service>.replicaCount=5` guarantees at least 5 pods.
{{ include "common.scaling.minReplicas" . }}
*/}}
{{- define "common.scaling.minReplicas" -}}
{{- $hpa := .Values.autoscaling | default dict -}}
{{- max (int ($hpa.minReplicas | default 1)) (int (.Values.replicaCount | default 1)) -}}
{{- end -}}

{{/*
Kind of the workload the HPA and the PDB target: StatefulSet when persistence.enabled, else
Deployment.
{{ include "common.scaling.targetKind" . }}
*/}}
{{- define "common.scaling.targetKind" -}}
{{- if (.Values.persistence | default dict).enabled -}}StatefulSet{{- else -}}Deployment{{- end -}}
{{- end -}}

{{/*
HorizontalPodAutoscaler (autoscaling/v2) on CPU and memory utilisation; renders nothing unless
autoscaling.enabled. The workload then has no replicas field, so the HPA owns the count.
{{- include "common.scaling.hpa" . }}
*/}}
{{- define "common.scaling.hpa" -}}
{{- include "common.check.values" . -}}
{{- $hpa := .Values.autoscaling | default dict -}}
{{- if $hpa.enabled }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  {{- include "common.meta.objectMeta" (dict "context" .) | nindent 2 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: {{ include "common.scaling.targetKind" . }}
    name: {{ include "common.meta.fullname" . }}
  minReplicas: {{ include "common.scaling.minReplicas" . }}
  maxReplicas: {{ $hpa.maxReplicas | int }}
  metrics:
    {{- with $hpa.targetCPUUtilizationPercentage }}
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ . | int }}
    {{- end }}
    {{- with $hpa.targetMemoryUtilizationPercentage }}
    - type: Resource
      resource:
        name: memory
        target:
          type: Utilization
          averageUtilization: {{ . | int }}
    {{- end }}
{{- end }}
{{- end -}}

{{/*
PodDisruptionBudget (policy/v1) with either minAvailable or maxUnavailable; renders nothing
unless podDisruptionBudget.enabled.
{{- include "common.scaling.pdb" . }}
*/}}
{{- define "common.scaling.pdb" -}}
{{- include "common.check.values" . -}}
{{- $pdb := .Values.podDisruptionBudget | default dict -}}
{{- if $pdb.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  {{- include "common.meta.objectMeta" (dict "context" .) | nindent 2 }}
spec:
  {{- if not (kindIs "invalid" $pdb.minAvailable) }}
  minAvailable: {{ $pdb.minAvailable }}
  {{- else }}
  maxUnavailable: {{ $pdb.maxUnavailable }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "common.meta.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end -}}
