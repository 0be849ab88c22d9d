{{/*
The metrics settings as INGEST_METRICS__* entries, for the run's ConfigMap (workers inherit
it): include "aion-ingest.metricsEnv" . in configmap.yaml's data. The pod template must also
declare the container port named "metrics" (see "aion-ingest.metricsPort").
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
