{{/*
The metrics settings as INGEST_METRICS__* entries of the run's ConfigMap (workers inherit
it), and the container port named "metrics" of the coordinator's pod (the worker Job copies
it: ingest/launch/jobspec.py). The PodMonitor scrapes that port on both.
*/}}
{{- define "aion-ingest.metricsEnv" -}}
{{- if .Values.metrics.enabled }}
INGEST_METRICS__PORT: {{ .Values.metrics.port | quote }}
INGEST_METRICS__ADDRESS: "0.0.0.0"
INGEST_METRICS__LINGER_SECONDS: {{ .Values.metrics.lingerSeconds | quote }}
INGEST_METRICS__RELEASE: {{ .Release.Name | quote }}
{{- with .Values.metrics.pushgatewayUrl }}
INGEST_METRICS__PUSHGATEWAY_URL: {{ . | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "aion-ingest.metricsPort" -}}
{{- if .Values.metrics.enabled }}
ports:
  - name: metrics
    containerPort: {{ .Values.metrics.port }}
    protocol: TCP
{{- end }}
{{- end -}}
