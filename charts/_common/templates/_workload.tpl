{{- /*
Workloads: Deployment, StatefulSet and the pod they share (containers, init containers that
wait for dependencies, probes, resources, security contexts, writable volumes).
*/ -}}

{{/*
Default resources per service profile. nodejs, java, python and nginx are the design
document's table ("Recommended by Service Type"). php and go are not in the table; the values
below are this library's own choice:
  - php: an Apache/mod_php process serving small JSON requests; like nginx for CPU but with
    more room for the PHP interpreter per worker (128Mi request, 256Mi limit).
  - go: a single static binary with a small heap, such as a queue consumer (64Mi request,
    128Mi limit, 50m CPU request).
Returns YAML; parse it with fromYaml.
{{ include "common.workload.profiles" . | fromYaml }}
*/}}
{{- define "common.workload.profiles" -}}
nodejs:
  requests: {cpu: 100m, memory: 256Mi}
  limits: {cpu: 500m, memory: 512Mi}
java:
  requests: {cpu: 250m, memory: 512Mi}
  limits: {cpu: 1000m, memory: 1Gi}
python:
  requests: {cpu: 100m, memory: 256Mi}
  limits: {cpu: 500m, memory: 512Mi}
nginx:
  requests: {cpu: 50m, memory: 128Mi}
  limits: {cpu: 200m, memory: 256Mi}
php:
  requests: {cpu: 100m, memory: 128Mi}
  limits: {cpu: 500m, memory: 256Mi}
go:
  requests: {cpu: 50m, memory: 64Mi}
  limits: {cpu: 250m, memory: 128Mi}
{{- end -}}

{{/*
Merge two maps two levels deep, the override winning; leaves that are null or "" are dropped,
which is how values remove a default (resources.limits.cpu: ""). Unlike sprig's mergeOverwrite
it lets false and 0 override a default. Returns YAML; parse it with fromYaml.
{{ include "common.workload.merge" (dict "base" $defaults "override" .Values.securityContext) | fromYaml }}
*/}}
{{- define "common.workload.merge" -}}
{{- $out := deepCopy (.base | default dict) -}}
{{- range $key, $value := (.override | default dict) -}}
{{- $current := get $out $key -}}
{{- if and (kindIs "map" $value) (kindIs "map" $current) -}}
{{- $inner := deepCopy $current -}}
{{- range $k, $v := $value -}}
{{- $_ := set $inner $k $v -}}
{{- end -}}
{{- $_ := set $out $key $inner -}}
{{- else -}}
{{- $_ := set $out $key $value -}}
{{- end -}}
{{- end -}}
{{- range $key, $value := $out -}}
{{- if kindIs "map" $value -}}
{{- range $k, $v := $value -}}
{{- if or (kindIs "invalid" $v) (and (kindIs "string" $v) (eq $v "")) -}}
{{- $_ := unset $value $k -}}
{{- end -}}
{{- end -}}
{{- else if or (kindIs "invalid" $value) (and (kindIs "string" $value) (eq $value "")) -}}
{{- $_ := unset $out $key -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/*
Container resources: the profile's defaults with .Values.resources merged over them, so
values-prod.yaml can raise one limit and keep the rest.
{{ include "common.workload.resources" . }}
*/}}
{{- define "common.workload.resources" -}}
{{- $profile := get (include "common.workload.profiles" . | fromYaml) (toString .Values.profile) -}}
{{- include "common.workload.merge" (dict "base" $profile "override" .Values.resources) -}}
{{- end -}}

{{/*
Pod security context: runAsNonRoot and the RuntimeDefault seccomp profile, with
.Values.podSecurityContext merged over them (a service relaxes one field there).
{{ include "common.workload.podSecurityContext" . }}
*/}}
{{- define "common.workload.podSecurityContext" -}}
{{- $defaults := dict "runAsNonRoot" true "seccompProfile" (dict "type" "RuntimeDefault") -}}
{{- include "common.workload.merge" (dict "base" $defaults "override" .Values.podSecurityContext) -}}
{{- end -}}

{{/*
Container security context: read-only root filesystem, no privilege escalation, every
capability dropped, with .Values.securityContext merged over it.
{{ include "common.workload.securityContext" . }}
*/}}
{{- define "common.workload.securityContext" -}}
{{- $defaults := dict "allowPrivilegeEscalation" false "readOnlyRootFilesystem" true "capabilities" (dict "drop" (list "ALL")) -}}
{{- include "common.workload.merge" (dict "base" $defaults "override" .Values.securityContext) -}}
{{- end -}}

{{/*
Image pull policy: image.pullPolicy, else global.imagePullPolicy, else IfNotPresent.
{{ include "common.workload.imagePullPolicy" . }}
*/}}
{{- define "common.workload.imagePullPolicy" -}}
{{- $global := .Values.global | default dict -}}
{{- (.Values.image | default dict).pullPolicy | default $global.imagePullPolicy | default "IfNotPresent" -}}
{{- end -}}

{{/*
One probe. "kind" is liveness, readiness or startup; timing fields left out of values take the
design document's defaults. httpGet probes target the container port named "http".
{{ include "common.workload.probe" (dict "context" . "kind" "liveness") }}
*/}}
{{- define "common.workload.probe" -}}
{{- $defaults := dict
    "liveness" (dict "initialDelaySeconds" 30 "periodSeconds" 10 "timeoutSeconds" 5 "failureThreshold" 3)
    "readiness" (dict "initialDelaySeconds" 10 "periodSeconds" 5 "timeoutSeconds" 3 "failureThreshold" 3 "successThreshold" 1)
    "startup" (dict "initialDelaySeconds" 0 "periodSeconds" 10 "timeoutSeconds" 5 "failureThreshold" 30) -}}
{{- $probe := get (.context.Values.probes | default dict) .kind | default dict -}}
{{- $timing := deepCopy (get $defaults .kind) -}}
{{- range $field := list "initialDelaySeconds" "periodSeconds" "timeoutSeconds" "failureThreshold" "successThreshold" -}}
{{- if hasKey $probe $field -}}
{{- $_ := set $timing $field (get $probe $field) -}}
{{- end -}}
{{- end -}}
{{- if $probe.httpGet -}}
httpGet:
  path: {{ $probe.httpGet.path }}
  port: http
{{- else -}}
exec:
  command:
    {{- toYaml $probe.exec.command | nindent 4 }}
{{- end }}
{{ toYaml $timing }}
{{- end -}}

{{/*
Init containers, one per entry of .Values.dependsOn (dependency name -> {host, port}): each
loops on `nc -z host port` until the dependency accepts connections. Pinned busybox image,
hardened security context, small resources.
{{ include "common.workload.initContainers" . }}
*/}}
{{- define "common.workload.initContainers" -}}
{{- $image := .Values.waitImage | default dict -}}
{{- $ref := printf "%s:%s" ($image.repository | default "busybox") (toString ($image.tag | default "1.37.0")) -}}
{{- range $dep, $target := (.Values.dependsOn | default dict) }}
- name: {{ printf "wait-for-%s" $dep | trunc 63 | trimSuffix "-" }}
  image: {{ $ref | quote }}
  imagePullPolicy: IfNotPresent
  command: ["sh", "-c"]
  args:
    - |
      until nc -z -w 2 {{ $target.host }} {{ $target.port }}; do
        echo "waiting for {{ $dep }} on {{ $target.host }}:{{ $target.port }}"
        sleep 2
      done
      echo "{{ $dep }} accepts connections on {{ $target.host }}:{{ $target.port }}"
  securityContext:
    runAsNonRoot: true
    runAsUser: 65534
    runAsGroup: 65534
    allowPrivilegeEscalation: false
    readOnlyRootFilesystem: true
    capabilities:
      drop: ["ALL"]
    seccompProfile:
      type: RuntimeDefault
  resources:
    requests: {cpu: 10m, memory: 16Mi}
    limits: {cpu: 50m, memory: 32Mi}
{{- end }}
{{- end -}}

{{/*
The service's container: command and args when set (else the image's), the configFiles mounted
one file each (subPath, read-only) and an emptyDir per writable path.
{{ include "common.workload.container" . }}
*/}}
{{- define "common.workload.container" -}}
- name: {{ include "common.meta.name" . }}
  image: {{ printf "%s:%s" .Values.image.repository (toString .Values.image.tag) | quote }}
  imagePullPolicy: {{ include "common.workload.imagePullPolicy" . }}
  {{- with .Values.command }}
  command:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.args }}
  args:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if .Values.containerPort }}
  ports:
    - name: http
      containerPort: {{ .Values.containerPort }}
      protocol: TCP
  {{- end }}
  {{- with include "common.config.envFrom" . | trim }}
  envFrom:
    {{- . | nindent 4 }}
  {{- end }}
  {{- range $kind := list "liveness" "readiness" "startup" }}
  {{- $probe := get ($.Values.probes | default dict) $kind | default dict }}
  {{- if $probe.enabled }}
  {{ $kind }}Probe:
    {{- include "common.workload.probe" (dict "context" $ "kind" $kind) | nindent 4 }}
  {{- end }}
  {{- end }}
  resources:
    {{- include "common.workload.resources" . | nindent 4 }}
  securityContext:
    {{- include "common.workload.securityContext" . | nindent 4 }}
  {{- if or .Values.writablePaths .Values.configFiles (.Values.persistence | default dict).enabled }}
  volumeMounts:
    {{- range $name, $path := (.Values.writablePaths | default dict) }}
    - name: {{ printf "writable-%s" $name }}
      mountPath: {{ $path }}
    {{- end }}
    {{- range $name, $file := (.Values.configFiles | default dict) }}
    - name: config-files
      mountPath: {{ $file.mountPath }}
      subPath: {{ $name }}
      readOnly: true
    {{- end }}
    {{- if (.Values.persistence | default dict).enabled }}
    - name: data
      mountPath: {{ .Values.persistence.mountPath }}
    {{- end }}
  {{- end }}
{{- end -}}

{{/*
Pod template shared by the Deployment and the StatefulSet.
{{ include "common.workload.podTemplate" . }}
*/}}
{{- define "common.workload.podTemplate" -}}
{{- $annotations := deepCopy (.Values.podAnnotations | default dict) -}}
{{- $_ := set $annotations "checksum/config" (include "common.config.checksum" .) -}}
metadata:
  labels:
    {{- include "common.meta.labels" . | nindent 4 }}
  annotations:
    {{- toYaml $annotations | nindent 4 }}
spec:
  serviceAccountName: {{ include "common.access.serviceAccountName" . }}
  automountServiceAccountToken: {{ (.Values.serviceAccount | default dict).automountToken | default false }}
  securityContext:
    {{- include "common.workload.podSecurityContext" . | nindent 4 }}
  {{- with include "common.workload.initContainers" . | trim }}
  initContainers:
    {{- . | nindent 4 }}
  {{- end }}
  containers:
    {{- include "common.workload.container" . | nindent 4 }}
  {{- if or .Values.writablePaths .Values.configFiles }}
  volumes:
    {{- range $name, $path := (.Values.writablePaths | default dict) }}
    - name: {{ printf "writable-%s" $name }}
      emptyDir: {}
    {{- end }}
    {{- if .Values.configFiles }}
    - name: config-files
      configMap:
        name: {{ include "common.meta.suffixed" (dict "context" . "suffix" "files") }}
    {{- end }}
  {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{/*
Deployment of a stateless service: RollingUpdate with maxSurge 1 and maxUnavailable 0, and no
replicas field when the HPA owns the replica count. Renders nothing when persistence.enabled
(common.workload.statefulset takes over).
{{- include "common.workload.deployment" . }}
*/}}
{{- define "common.workload.deployment" -}}
{{- include "common.check.values" . -}}
{{- if not (.Values.persistence | default dict).enabled }}
apiVersion: apps/v1
kind: Deployment
metadata:
  {{- include "common.meta.objectMeta" (dict "context" .) | nindent 2 }}
spec:
  {{- if not (.Values.autoscaling | default dict).enabled }}
  replicas: {{ .Values.replicaCount | int }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
  selector:
    matchLabels:
      {{- include "common.meta.selectorLabels" . | nindent 6 }}
  template:
    {{- include "common.workload.podTemplate" . | nindent 4 }}
{{- end }}
{{- end -}}

{{/*
StatefulSet of a service that keeps state: one PersistentVolumeClaim per pod from
.Values.persistence (size, storageClass, accessMode, mountPath), the headless Service
<name>-headless for stable pod names, ordered start. Renders only when persistence.enabled.
{{- include "common.workload.statefulset" . }}
*/}}
{{- define "common.workload.statefulset" -}}
{{- include "common.check.values" . -}}
{{- $persistence := .Values.persistence | default dict -}}
{{- if $persistence.enabled }}
apiVersion: apps/v1
kind: StatefulSet
metadata:
  {{- include "common.meta.objectMeta" (dict "context" .) | nindent 2 }}
spec:
  {{- if not (.Values.autoscaling | default dict).enabled }}
  replicas: {{ .Values.replicaCount | int }}
  {{- end }}
  serviceName: {{ include "common.meta.suffixed" (dict "context" . "suffix" "headless") }}
  podManagementPolicy: OrderedReady
  revisionHistoryLimit: 5
  updateStrategy:
    type: RollingUpdate
  selector:
    matchLabels:
      {{- include "common.meta.selectorLabels" . | nindent 6 }}
  template:
    {{- include "common.workload.podTemplate" . | nindent 4 }}
  volumeClaimTemplates:
    - apiVersion: v1
      kind: PersistentVolumeClaim
      metadata:
        name: data
        labels:
          {{- include "common.meta.selectorLabels" . | nindent 10 }}
      spec:
        accessModes: [{{ $persistence.accessMode | default "ReadWriteOnce" | quote }}]
        {{- with $persistence.storageClass }}
        storageClassName: {{ . | quote }}
        {{- end }}
        resources:
          requests:
            storage: {{ $persistence.size | default "1Gi" | quote }}
{{- end }}
{{- end -}}
