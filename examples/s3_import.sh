#!/usr/bin/env bash
# A dataset already in S3: the server fetches it with its own credentials (no bytes from this machine),
# when the URL is under one of the server's SHEARS_DATASET_IMPORT_PREFIXES; 403 otherwise.
#
#   SHEARS_URL=... SHEARS_API_KEY=... examples/s3_import.sh s3://datasets/tenants/acme/kws.tar.gz '{"frontend": {"type": "mfcc"}}'
set -euo pipefail
url=${1:?give the s3:// URL}
options=${2:-"{}"}
curl -fsS -H "Authorization: Bearer $SHEARS_API_KEY" -H 'Content-Type: application/json' \
  -d "{\"url\": \"$url\", \"options\": $options}" "$SHEARS_URL/v1/datasets/import"
