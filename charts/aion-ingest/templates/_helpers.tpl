{{/* Names: full name cut to 52 so that CronJob-made Job names (+11) stay within 63. */}}
{{- define "aion-ingest.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "aion-ingest.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "aion-ingest.selectorLabels" -}}
app.kubernetes.io/name: {{ include "aion-ingest.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "aion-ingest.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "aion-ingest.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: aion-ingest
{{- end -}}

{{- define "aion-ingest.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "aion-ingest.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The worker service account when the workers get their own (else empty). */}}
{{- define "aion-ingest.workerServiceAccountName" -}}
{{- if .Values.workers.serviceAccount.create -}}
{{- default (printf "%s-worker" (include "aion-ingest.fullname" .)) .Values.workers.serviceAccount.name -}}
{{- else -}}
{{- .Values.workers.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
The run id in job mode: run.id, else the full name made a run id exactly as the
coordinator's run_id_for_job does (ingest/orchestration/kubernetes.py): itself when a DNS label of at
most 40, else its first 29 characters and 10 hex digits of its SHA-256. It does not
depend on the revision, so every revision of a release continues one run.
*/}}
{{- define "aion-ingest.runId" -}}
{{- if .Values.run.id -}}
{{- .Values.run.id -}}
{{- else -}}
{{- $name := include "aion-ingest.fullname" . -}}
{{- if and (le (len $name) 40) (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" $name) -}}
{{- $name -}}
{{- else -}}
{{- $head := regexReplaceAll "[^a-z0-9]+" (lower $name) "-" | trunc 29 | trimAll "-" -}}
{{- $digest := sha256sum $name | trunc 10 -}}
{{- if $head }}{{ printf "%s-%s" $head $digest }}{{ else }}{{ $digest }}{{ end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The coordinator Job's name in job mode: the full name and the release revision, so that
helm upgrade creates a new Job (a Job's pod template cannot change) for the same run id.
*/}}
{{- define "aion-ingest.jobName" -}}
{{- printf "%s-r%d" (include "aion-ingest.fullname" .) (int .Release.Revision) -}}
{{- end -}}

{{- define "aion-ingest.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "aion-ingest.apiSecretName" -}}
{{- default (printf "%s-api" (include "aion-ingest.fullname" .)) .Values.api.existingSecret -}}
{{- end -}}

{{- define "aion-ingest.apiSecretKey" -}}
{{- if .Values.api.existingSecret -}}{{ .Values.api.existingSecretKey }}{{- else -}}api-key{{- end -}}
{{- end -}}

{{- define "aion-ingest.s3SecretName" -}}
{{- if eq .Values.s3.credentials "existingSecret" -}}
{{- required "s3.existingSecret is required when s3.credentials is existingSecret" .Values.s3.existingSecret -}}
{{- else -}}
{{- printf "%s-s3" (include "aion-ingest.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/*
The coordinator's pod template, shared by the Job (mode=job) and the CronJob (mode=cron).
The worker Job copies image, env, envFrom, service account, security contexts, resources,
volumes, scheduling, labels and annotations from its Job's template at run time:
configure them here only.
*/}}
{{- define "aion-ingest.podTemplate" -}}
metadata:
  labels:
    {{- include "aion-ingest.labels" . | nindent 4 }}
    app.kubernetes.io/component: coordinator
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
    {{- if eq .Values.mode "job" }}
    # The worker Job is owned by this ConfigMap, not by the coordinator Job: it survives
    # helm upgrade (a new coordinator Job adopts it) and goes with helm uninstall.
    aion-ingest/workers-owner: ConfigMap/{{ include "aion-ingest.fullname" . }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  restartPolicy: Never
  serviceAccountName: {{ include "aion-ingest.serviceAccountName" . }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  {{- with .Values.podSecurityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.image.pullSecrets }}
  imagePullSecrets:
    {{- range . }}
    - name: {{ . }}
    {{- end }}
  {{- end }}
  {{- with include "aion-ingest.scheduling" . | trim }}
  {{- . | nindent 2 }}
  {{- end }}
  containers:
    - name: coordinator
      image: {{ include "aion-ingest.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      {{- if eq .Values.mode "job" }}
      args: ["coordinate", {{ .Values.run.source | quote }}, "--run-id", {{ include "aion-ingest.runId" . | quote }}]
      {{- else }}
      args: ["coordinate", {{ .Values.run.source | quote }}]
      {{- end }}
      {{- include "aion-ingest.metricsPort" . | nindent 6 }}
      {{- include "aion-ingest.containerEnv" . | nindent 6 }}
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.securityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- include "aion-ingest.volumeMounts" . | nindent 6 }}
  {{- include "aion-ingest.volumes" . | nindent 2 }}
{{- end -}}

{{/* Scheduling of a pod (the coordinator, the preflight test; the workers copy it). */}}
{{- define "aion-ingest.scheduling" -}}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* A container's envFrom and env: the ConfigMap, the API key, the S3 keys, extras. */}}
{{- define "aion-ingest.containerEnv" -}}
envFrom:
  - configMapRef:
      name: {{ include "aion-ingest.fullname" . }}
  {{- with .Values.extraEnvFrom }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
env:
  - name: POD_NAME
    valueFrom:
      fieldRef:
        fieldPath: metadata.name
  - name: POD_NAMESPACE
    valueFrom:
      fieldRef:
        fieldPath: metadata.namespace
  - name: AIONVISION_API_KEY
    valueFrom:
      secretKeyRef:
        name: {{ include "aion-ingest.apiSecretName" . }}
        key: {{ include "aion-ingest.apiSecretKey" . }}
  {{- if ne .Values.s3.credentials "none" }}
  - name: AWS_ACCESS_KEY_ID
    valueFrom:
      secretKeyRef:
        name: {{ include "aion-ingest.s3SecretName" . }}
        key: AWS_ACCESS_KEY_ID
  - name: AWS_SECRET_ACCESS_KEY
    valueFrom:
      secretKeyRef:
        name: {{ include "aion-ingest.s3SecretName" . }}
        key: AWS_SECRET_ACCESS_KEY
  {{- end }}
  {{- with .Values.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{- define "aion-ingest.volumeMounts" -}}
volumeMounts:
  # The root filesystem is read-only; spooling and temp files go here.
  - name: tmp
    mountPath: /tmp
  {{- with .Values.extraVolumeMounts }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{- define "aion-ingest.volumes" -}}
volumes:
  - name: tmp
    {{- if .Values.tmp.sizeLimit }}
    emptyDir:
      sizeLimit: {{ .Values.tmp.sizeLimit }}
    {{- else }}
    emptyDir: {}
    {{- end }}
  {{- with .Values.extraVolumes }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{/*
The coordinator Job's spec (without the template), shared by Job and CronJob.
podFailurePolicy: its verdicts are final (2 configuration, 3 fatal for the run, 4 the
run ended with failed shards: the report names them), an evicted or preempted pod is
retried without counting, and only a crash (1, or a signal) counts towards backoffLimit.
*/}}
{{- define "aion-ingest.jobSpec" -}}
backoffLimit: {{ .Values.coordinator.backoffLimit }}
{{- with .Values.coordinator.activeDeadlineSeconds }}
activeDeadlineSeconds: {{ . }}
{{- end }}
{{- if not (kindIs "invalid" .Values.coordinator.ttlSecondsAfterFinished) }}
ttlSecondsAfterFinished: {{ .Values.coordinator.ttlSecondsAfterFinished }}
{{- end }}
podFailurePolicy:
  rules:
    - action: FailJob
      onExitCodes:
        containerName: coordinator
        operator: In
        values: [2, 3, 4]
    - action: Ignore
      onPodConditions:
        - type: DisruptionTarget
          status: "True"
template:
  {{- include "aion-ingest.podTemplate" . | nindent 2 }}
{{- end -}}

{{/*
The recurring import's ledger name: run.ledger, else in cron mode the release's full name
(a DNS label, so a valid ledger name), else none.
*/}}
{{- define "aion-ingest.ledger" -}}
{{- if .Values.run.ledger -}}
{{- .Values.run.ledger -}}
{{- else if eq .Values.mode "cron" -}}
{{- include "aion-ingest.fullname" . -}}
{{- end -}}
{{- end }}
