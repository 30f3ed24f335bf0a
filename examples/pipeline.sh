#!/usr/bin/env bash
# A build-pipeline step with only curl and jq: prune MODEL on a Shears server, download the
# .tflite and its report, and fail the build when the job fails or the model misses its budget.
#
#   SHEARS_URL=https://shears.example.com SHEARS_API_KEY=... MODEL=model.keras \
#   MAX_SIZE_KB=64 examples/pipeline.sh
#
# Other settings (environment): DATA, SPARSITY, EPOCHS, MAX_ACCURACY_DROP, TIMEOUT_S, POLL_S,
# OUT, REPORT; MODEL_ID instead of MODEL to reuse a model uploaded before.
#
# Exit codes follow `shears remote submit --wait`: 0 done and within budget, 1 request refused
# (4xx) or unreachable, 2 job failed, 3 job cancelled, 4 timed out, 5 budget missed.
set -euo pipefail

: "${SHEARS_URL:?set SHEARS_URL to the server, e.g. https://shears.example.com}"
: "${SHEARS_API_KEY:?set SHEARS_API_KEY}"
: "${MODEL:=}"                         # the .keras file to prune (uploaded), or
: "${MODEL_ID:=}"                      # the id of a model uploaded before
[ -n "$MODEL$MODEL_ID" ] || { echo "shears: set MODEL to the .keras file to prune (or MODEL_ID)" >&2; exit 1; }
DATA=${DATA:-builtin:digits}          # builtin:digits, builtin:har, or a local .npz (uploaded)
SPARSITY=${SPARSITY:-0.5}
EPOCHS=${EPOCHS:-2}
MAX_SIZE_KB=${MAX_SIZE_KB:-}          # empty: no size budget
MAX_ACCURACY_DROP=${MAX_ACCURACY_DROP:-}  # empty: no accuracy guard
TIMEOUT_S=${TIMEOUT_S:-1800}
POLL_S=${POLL_S:-2}
OUT=${OUT:-pruned.tflite}
REPORT=${REPORT:-report.json}

SHEARS_URL=${SHEARS_URL%/}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

die() { code=$1; shift; echo "shears: $*" >&2; exit "$code"; }

# api METHOD PATH [curl args...]: the body on stdout; the server's error (and exit 1) on a 4xx/5xx.
# curl retries network errors and 408/429/5xx answers with a doubling delay; each call sends one
# Idempotency-Key, so a retried POST is the same request.
api() {
  local method=$1 path=$2 status
  shift 2
  status=$(curl -sS --retry 5 --retry-connrefused --retry-max-time 120 \
    -X "$method" -H "Authorization: Bearer $SHEARS_API_KEY" -H "Idempotency-Key: $(idempotency_key)" \
    -o "$work/body" -w '%{http_code}' "$@" "$SHEARS_URL$path") || die 1 "$method $path: cannot reach $SHEARS_URL"
  if [ "$status" -ge 400 ]; then
    die 1 "$method $path: HTTP $status $(jq -r '.error.code + ": " + .error.message' "$work/body" 2>/dev/null \
      || head -c 500 "$work/body")"
  fi
  cat "$work/body"
}

idempotency_key() { cat /proc/sys/kernel/random/uuid 2>/dev/null || echo "$$-$RANDOM-$RANDOM-$(date +%s%N)"; }

# 1. Upload the model (and the data when it is a local file).
model_id=$MODEL_ID
if [ -z "$model_id" ]; then
  [ -f "$MODEL" ] || die 1 "no such file: $MODEL"
  model_id=$(api POST /v1/models -F "file=@$MODEL" | jq -r .id)
  echo "model $MODEL -> $model_id"
fi
dataset_id=$DATA
if [ -f "$DATA" ]; then
  dataset_id=$(api POST /v1/datasets -F "file=@$DATA" | jq -r .id)
  echo "data $DATA -> $dataset_id"
fi

# 2. Submit the job.
spec=$(jq -n --arg model "$model_id" --arg data "$dataset_id" --argjson sparsity "$SPARSITY" \
  --argjson epochs "$EPOCHS" --arg drop "$MAX_ACCURACY_DROP" '
  {model_id: $model, dataset_id: $data, target: {sparsity: $sparsity}, finetune: {epochs: $epochs}}
  + (if $drop == "" then {} else {max_accuracy_drop: ($drop | tonumber)} end)')
job_id=$(api POST /v1/jobs -H 'content-type: application/json' -d "$spec" | jq -r .id)
echo "job $job_id submitted"

# 3. Poll until it is finished, printing a line when the stage or the percent changes.
deadline=$(( $(date +%s) + TIMEOUT_S ))
last=""
while :; do
  api GET "/v1/jobs/$job_id" > "$work/job.json"
  status=$(jq -r .status "$work/job.json")
  line=$(jq -r '"\(.status) \(.stage // "-") \(.progress * 100 | floor)%"' "$work/job.json")
  [ "$line" != "$last" ] && echo "job $job_id $line" && last=$line
  case $status in
    succeeded) break ;;
    failed) die 2 "job $job_id failed: $(jq -r '.error.code + ": " + .error.message' "$work/job.json")" ;;
    cancelled) die 3 "job $job_id was cancelled" ;;
  esac
  [ "$(date +%s)" -ge "$deadline" ] && die 4 "job $job_id still $status after ${TIMEOUT_S}s (it keeps running)"
  sleep "$POLL_S"
done

# 4. Download the model and the report.
api GET "/v1/jobs/$job_id/model.tflite" > "$OUT"
api GET "/v1/jobs/$job_id/report" > "$REPORT"
jq -r '"accuracy \(.accuracy.before) -> \(.accuracy.after), sparsity \(.sparsity.overall), " +
  "\(.size.tflite_bytes) bytes, host \(.latency[] | select(.device == "host") | .measured_ms) ms"' "$REPORT"
echo "wrote $OUT and $REPORT"

# 5. Fail the build when the size budget is missed.
if [ -n "$MAX_SIZE_KB" ]; then
  if ! jq -e --argjson max "$MAX_SIZE_KB" '.size.tflite_bytes / 1024 <= $max' "$REPORT" > /dev/null; then
    die 5 "budget missed: size $(jq -r '.size.tflite_bytes / 1024 * 10 | floor / 10' "$REPORT") KB, budget $MAX_SIZE_KB KB, over by $(jq -r --argjson max "$MAX_SIZE_KB" '(.size.tflite_bytes / 1024 - $max) * 10 | floor / 10' "$REPORT") KB"
  fi
  echo "size budget met: $(jq -r '.size.tflite_bytes / 1024 * 10 | floor / 10' "$REPORT") KB <= $MAX_SIZE_KB KB"
fi
