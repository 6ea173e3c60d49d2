{{- /*
Checks of the values that a JSON schema cannot express (choices that depend on each other).
Each failure names the value and the allowed choices. Every object template calls
common.check.values first, so a chart without a values.schema.json is still protected.
*/ -}}

{{/*
Fail the render when a value is invalid; renders nothing otherwise.
{{- include "common.check.values" . }}
The checks run once per chart and render: helm hands every template of one chart the same root
context, so the first call marks it and later calls return at once. Ten object templates each
repeating the checks cost about a fifth of every render of a service chart (helm template of 20
services: 0.47 s with the checks repeated, 0.38 s with the mark).
*/}}
{{- define "common.check.values" -}}
{{- if not (hasKey . "commonValuesChecked") -}}
{{- $_ := set . "commonValuesChecked" true -}}
{{- $v := .Values -}}
{{- $_ := include "common.meta.name" . -}}
{{- $profiles := keys (include "common.workload.profiles" . | fromYaml) | sortAlpha -}}
{{- if not (has (toString $v.profile) $profiles) -}}
{{- fail (printf "profile %q is not valid: choose one of %s" (toString $v.profile) (join ", " $profiles)) -}}
{{- end -}}
{{- $image := $v.image | default dict -}}
{{- if not $image.repository -}}
{{- fail "image.repository must not be empty" -}}
{{- end -}}
{{- $tag := toString ($image.tag | default "") -}}
{{- if or (eq $tag "") (eq $tag "latest") -}}
{{- fail (printf "image.tag %q is not allowed: pin a version such as \"2.1.0\" (empty and \"latest\" are refused)" $tag) -}}
{{- end -}}
{{- $pullPolicies := list "" "Always" "IfNotPresent" "Never" -}}
{{- if not (has (toString ($image.pullPolicy | default "")) $pullPolicies) -}}
{{- fail (printf "image.pullPolicy %q is not valid: choose Always, IfNotPresent, Never or \"\" (use global.imagePullPolicy)" (toString $image.pullPolicy)) -}}
{{- end -}}
{{- $service := $v.service | default dict -}}
{{- if $service.enabled -}}
{{- $types := list "ClusterIP" "NodePort" "LoadBalancer" -}}
{{- if not (has (toString $service.type) $types) -}}
{{- fail (printf "service.type %q is not valid: choose one of %s" (toString $service.type) (join ", " $types)) -}}
{{- end -}}
{{- if not $v.containerPort -}}
{{- fail "service.enabled is true but containerPort is empty: a Service needs the port the container listens on (set service.enabled: false for a worker)" -}}
{{- end -}}
{{- end -}}
{{- range $kind := list "liveness" "readiness" "startup" -}}
{{- $probe := get ($v.probes | default dict) $kind | default dict -}}
{{- if $probe.enabled -}}
{{- if and $probe.httpGet $probe.exec -}}
{{- fail (printf "probes.%s sets both httpGet and exec: keep one" $kind) -}}
{{- end -}}
{{- if not (or $probe.httpGet $probe.exec) -}}
{{- fail (printf "probes.%s is enabled but has neither httpGet.path nor exec.command" $kind) -}}
{{- end -}}
{{- if and $probe.httpGet (not $v.containerPort) -}}
{{- fail (printf "probes.%s.httpGet needs containerPort; a process that listens on no port needs an exec probe" $kind) -}}
{{- end -}}
{{- if and $probe.httpGet (not $probe.httpGet.path) -}}
{{- fail (printf "probes.%s.httpGet.path must not be empty" $kind) -}}
{{- end -}}
{{- if and $probe.exec (not $probe.exec.command) -}}
{{- fail (printf "probes.%s.exec.command must not be empty" $kind) -}}
{{- end -}}
{{- if and (ne $kind "readiness") (hasKey $probe "successThreshold") (ne (int $probe.successThreshold) 1) -}}
{{- fail (printf "probes.%s.successThreshold must be 1 (Kubernetes allows other values for readiness only)" $kind) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $dep, $target := ($v.dependsOn | default dict) -}}
{{- if not (and $target $target.host $target.port) -}}
{{- fail (printf "dependsOn.%s needs host and port" $dep) -}}
{{- end -}}
{{- end -}}
{{- $external := $v.externalSecret | default dict -}}
{{- $sources := list -}}
{{- if $v.secretEnv -}}{{- $sources = append $sources "secretEnv" -}}{{- end -}}
{{- if $v.existingSecret -}}{{- $sources = append $sources "existingSecret" -}}{{- end -}}
{{- if $external.data -}}{{- $sources = append $sources "externalSecret.data" -}}{{- end -}}
{{- if gt (len $sources) 1 -}}
{{- fail (printf "%s are %s set, but each alone is the source of the service's Secret: keep one of secretEnv (values rendered into a Secret), existingSecret (a Secret made elsewhere) and externalSecret.data (a Secret the External Secrets Operator makes)" (join " and " $sources) (ternary "both" "all" (eq (len $sources) 2))) -}}
{{- end -}}
{{- if $external.data -}}
{{- $global := ($v.global | default dict).externalSecrets | default dict -}}
{{- $store := $external.secretStoreRef | default dict -}}
{{- $storeKey := "externalSecret.secretStoreRef" -}}
{{- if not $store.name -}}
{{- $store = $global.secretStoreRef | default dict -}}
{{- $storeKey = "global.externalSecrets.secretStoreRef" -}}
{{- end -}}
{{- if not $store.name -}}
{{- fail "externalSecret.data needs a secret store: name the environment's in global.externalSecrets.secretStoreRef.name (or this service's own in externalSecret.secretStoreRef.name)" -}}
{{- end -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$" (toString $store.name)) -}}
{{- fail (printf "%s.name %q is not a valid SecretStore name: lower case letters, digits, '-' and '.'" $storeKey (toString $store.name)) -}}
{{- end -}}
{{- if not (has (toString ($store.kind | default "")) (list "" "SecretStore" "ClusterSecretStore")) -}}
{{- fail (printf "%s.kind %q is not valid: choose SecretStore, ClusterSecretStore or \"\" (SecretStore)" $storeKey (toString $store.kind)) -}}
{{- end -}}
{{- range $key, $interval := dict "externalSecret.refreshInterval" $external.refreshInterval "global.externalSecrets.refreshInterval" $global.refreshInterval -}}
{{- if and $interval (not (regexMatch "^(0|([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$" (toString $interval))) -}}
{{- fail (printf "%s %q is not a duration: write it as Go does, e.g. \"1h\", \"15m\" or \"0\" (read once)" $key (toString $interval)) -}}
{{- end -}}
{{- end -}}
{{- range $name, $ref := $external.data -}}
{{- if and $ref (not $ref.key) -}}
{{- fail (printf "externalSecret.data.%s needs key: the name of the secret in the store (and property: the field of it, where the store keeps several)" $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $hpa := $v.autoscaling | default dict -}}
{{- if $hpa.enabled -}}
{{- $min := include "common.scaling.minReplicas" . | int -}}
{{- if lt (int $hpa.maxReplicas) $min -}}
{{- fail (printf "autoscaling.maxReplicas (%d) is below the HPA floor max(autoscaling.minReplicas, replicaCount) = %d: raise autoscaling.maxReplicas or lower replicaCount" (int $hpa.maxReplicas) $min) -}}
{{- end -}}
{{- if not (or $hpa.targetCPUUtilizationPercentage $hpa.targetMemoryUtilizationPercentage) -}}
{{- fail "autoscaling.enabled needs autoscaling.targetCPUUtilizationPercentage or autoscaling.targetMemoryUtilizationPercentage" -}}
{{- end -}}
{{- end -}}
{{- $pdb := $v.podDisruptionBudget | default dict -}}
{{- if $pdb.enabled -}}
{{- $hasMin := not (kindIs "invalid" $pdb.minAvailable) -}}
{{- $hasMax := not (kindIs "invalid" $pdb.maxUnavailable) -}}
{{- if eq $hasMin $hasMax -}}
{{- fail "podDisruptionBudget needs exactly one of minAvailable and maxUnavailable (set the other to null)" -}}
{{- end -}}
{{- end -}}
{{- $ingress := $v.ingress | default dict -}}
{{- if $ingress.enabled -}}
{{- if not $service.enabled -}}
{{- fail "ingress.enabled needs service.enabled: the Ingress routes to the service's Service" -}}
{{- end -}}
{{- if not $ingress.host -}}
{{- fail "ingress.enabled needs ingress.host" -}}
{{- end -}}
{{- $pathTypes := list "Prefix" "Exact" "ImplementationSpecific" -}}
{{- if not (has (toString $ingress.pathType) $pathTypes) -}}
{{- fail (printf "ingress.pathType %q is not valid: choose one of %s" (toString $ingress.pathType) (join ", " $pathTypes)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
