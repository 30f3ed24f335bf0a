#!/usr/bin/env bash
# Upload a folder of images (one sub-folder per class, JPEG/PNG; optional train/ val/ test/ at the
# top) as a .zip, resized to 96x96 uint8 at upload, and print the server's check summary.
#
#   SHEARS_URL=... SHEARS_API_KEY=... examples/images.sh photos/   # photos/cat/*.jpg, photos/dog/*.jpg
set -euo pipefail
folder=${1:?give the folder of class folders}
zip_file=$(mktemp --suffix .zip); rm -f "$zip_file"
(cd "$folder" && zip -qr "$zip_file" .)
# Bad images (corrupt, unreadable) are skipped and counted up to max_bad_fraction, else a 422 names them.
shears remote datasets upload --options '{"image_size": [96, 96], "channels": 3, "max_bad_fraction": 0.02}' "$zip_file"
