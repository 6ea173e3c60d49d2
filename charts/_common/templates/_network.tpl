{{- /*
Network: the Service, the Ingress and the zero-trust NetworkPolicy.
*/ -}}

{{/*
Port of the Service: service.port, else containerPort.
{{ include "common.network.servicePort" . }}
*/}}
{{- define "common.network.servicePort" -}}
{{- (.Values.service | default dict).port | default .Values.containerPort -}}
{{- end -}}

{{/*
Service <name> on service.port, targeting the container port named "http", unless
service.enabled is false (a worker that listens on no port). With persistence.enabled it also
renders the headless Service <name>-headless that the StatefulSet names.
{{- include "common.network.service" . }}
*/}}
{{- define "common.network.service" -}}
{{- include "common.check.values" . -}}
{{- $service := .Values.service | default dict -}}
{{- if $service.enabled }}
apiVersion: v1
kind: Service
metadata:
  {{- include "common.meta.objectMeta" (dict "context" .) | nindent 2 }}
spec:
  type: {{ $service.type }}
  selector:
    {{- include "common.meta.selectorLabels" . | nindent 4 }}
  ports:
    - name: http
      port: {{ include "common.network.servicePort" . }}
      targetPort: http
      protocol: TCP
{{- end }}
{{- if (.Values.persistence | default dict).enabled }}
---
apiVersion: v1
kind: Service
metadata:
  {{- include "common.meta.objectMeta" (dict "context" . "name" (include "common.meta.suffixed" (dict "context" . "suffix" "headless"))) | nindent 2 }}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector:
    {{- include "common.meta.selectorLabels" . | nindent 4 }}
  {{- if .Values.containerPort }}
  ports:
    - name: http
      port: {{ .Values.containerPort }}
      targetPort: http
      protocol: TCP
  {{- end }}
{{- end }}
{{- end -}}

{{/*
Ingress (networking.k8s.io/v1) for one host and path to the Service; renders nothing unless
ingress.enabled.
{{- include "common.network.ingress" . }}
*/}}
{{- define "common.network.ingress" -}}
{{- include "common.check.values" . -}}
{{- $ingress := .Values.ingress | default dict -}}
{{- if $ingress.enabled }}
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  {{- include "common.meta.objectMeta" (dict "context" . "annotations" $ingress.annotations) | nindent 2 }}
spec:
  {{- with $ingress.className }}
  ingressClassName: {{ . }}
  {{- end }}
  {{- if ($ingress.tls | default dict).enabled }}
  tls:
    - hosts:
        - {{ $ingress.host | quote }}
      secretName: {{ $ingress.tls.secretName | default (include "common.meta.suffixed" (dict "context" . "suffix" "tls")) }}
  {{- end }}
  rules:
    - host: {{ $ingress.host | quote }}
      http:
        paths:
          - path: {{ $ingress.path | default "/" }}
            pathType: {{ $ingress.pathType }}
            backend:
              service:
                name: {{ include "common.meta.fullname" . }}
                port:
                  name: http
{{- end }}
{{- end -}}

{{/*
Zero-trust NetworkPolicy of the service's pods.
Ingress: only from pods labelled app.kubernetes.io/name=<client> for each key of
networkPolicy.allowedClients, and from the ingress controller's namespace when
networkPolicy.allowIngressController; nothing when the container listens on no port.
Egress: DNS to networkPolicy.dnsNamespace (UDP and TCP 53), each dependency of .Values.dependsOn
(pods labelled app.kubernetes.io/name=<dependency>, on its targetPort, else its port: a
NetworkPolicy sees the pod's port, not the Service's) and each CIDR of
networkPolicy.allowedExternal; nothing else.
{{- include "common.network.networkPolicy" . }}
*/}}
{{- define "common.network.networkPolicy" -}}
{{- include "common.check.values" . -}}
{{- $np := .Values.networkPolicy | default dict -}}
{{- if $np.enabled }}
{{- $clients := $np.allowedClients | default dict }}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  {{- include "common.meta.objectMeta" (dict "context" .) | nindent 2 }}
spec:
  podSelector:
    matchLabels:
      {{- include "common.meta.selectorLabels" . | nindent 6 }}
  policyTypes:
    - Ingress
    - Egress
  {{- if and .Values.containerPort (or $clients $np.allowIngressController) }}
  ingress:
    - from:
        {{- range $client, $_ := $clients }}
        - podSelector:
            matchLabels:
              app.kubernetes.io/name: {{ $client }}
        {{- end }}
        {{- if $np.allowIngressController }}
        - namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: {{ $np.ingressControllerNamespace | default "ingress-nginx" }}
          {{- with $np.ingressControllerPodLabels }}
          podSelector:
            matchLabels:
              {{- toYaml . | nindent 14 }}
          {{- end }}
        {{- end }}
      ports:
        - protocol: TCP
          port: {{ .Values.containerPort }}
  {{- else }}
  ingress: []
  {{- end }}
  egress:
    - to:
        - namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: {{ $np.dnsNamespace | default "kube-system" }}
      ports:
        - protocol: UDP
          port: 53
        - protocol: TCP
          port: 53
    {{- range $dep, $target := (.Values.dependsOn | default dict) }}
    - to:
        - podSelector:
            matchLabels:
              app.kubernetes.io/name: {{ $dep }}
      ports:
        - protocol: TCP
          port: {{ $target.targetPort | default $target.port }}
    {{- end }}
    {{- range $name, $target := ($np.allowedExternal | default dict) }}
    - to:
        - ipBlock:
            cidr: {{ $target.cidr }}
            {{- with $target.except }}
            except:
              {{- toYaml . | nindent 14 }}
            {{- end }}
      ports:
        - protocol: TCP
          port: {{ $target.port }}
    {{- end }}
{{- end }}
{{- end -}}
