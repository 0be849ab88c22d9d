#!/bin/sh
# The baseline: what a user could do without aion-ingest. s5cmd copies the bucket's
# objects to a folder, xargs cuts the file list into batches of FILES, and curl posts each
# batch to stream-batch, one batch every 60/RPM s (paced to the key's limit; curl --retry
# honours a 429's Retry-After). No report, no per-file ids, no resume.
#
#   shell_baseline.sh S3_ENDPOINT BUCKET API_URL API_KEY RPM FILES WORKDIR
#
# Run by bench/worker_budget.py --modes shell (it sets the AWS_* variables for moto).
set -eu
endpoint=$1 bucket=$2 api=$3 key=$4 rpm=$5 files=$6 dir=$7
mkdir -p "$dir"
s5cmd --endpoint-url "$endpoint" --numworkers 64 cp "s3://$bucket/*" "$dir/" >/dev/null
gap=$(awk "BEGIN { print 60 / $rpm }")
cd "$dir"
find . -type f | sort | xargs -n "$files" echo | while read -r batch; do
  set --
  for f in $batch; do set -- "$@" -F "files=@$f"; done
  curl -sS -o /dev/null --retry 5 -H "Authorization: Bearer $key" \
    -F skip_duplicates=true "$@" "$api/user-files/upload/stream-batch" &
  sleep "$gap"
done
wait
