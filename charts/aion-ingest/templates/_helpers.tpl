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
volumes and scheduling from this pod at run time: configure them here only.
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
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  restartPolicy: Never
  serviceAccountName: {{ include "aion-ingest.serviceAccountName" . }}
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
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
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
  containers:
    - name: coordinator
      image: {{ include "aion-ingest.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args: ["coordinate", {{ .Values.run.source | quote }}{{ with .Values.run.id }}, "--run-id", {{ . | quote }}{{ end }}]
      {{- include "aion-ingest.metricsPort" . | nindent 6 }}
      envFrom:
        - configMapRef:
            name: {{ include "aion-ingest.fullname" . }}
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
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.securityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        # The root filesystem is read-only; spooling and temp files go here.
        - name: tmp
          mountPath: /tmp
  volumes:
    - name: tmp
      emptyDir: {}
{{- end -}}

{{/* The coordinator Job's spec (without the template), shared by Job and CronJob. */}}
{{- define "aion-ingest.jobSpec" -}}
backoffLimit: {{ .Values.coordinator.backoffLimit }}
{{- with .Values.coordinator.activeDeadlineSeconds }}
activeDeadlineSeconds: {{ . }}
{{- end }}
{{- if not (kindIs "invalid" .Values.coordinator.ttlSecondsAfterFinished) }}
ttlSecondsAfterFinished: {{ .Values.coordinator.ttlSecondsAfterFinished }}
{{- end }}
template:
  {{- include "aion-ingest.podTemplate" . | nindent 2 }}
{{- end -}}
