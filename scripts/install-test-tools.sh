#!/usr/bin/env bash
# Test tools that are not Python packages: exiftool (independent metadata reader), ffprobe
# from ffmpeg (independent video reader: streams, tags, packet hashes) and Debian's Chromium,
# which Playwright drives for the review page's browser tests (Playwright's own browser
# download is never used).
# Installed with apt when we are root on Debian/Ubuntu; otherwise the tests that need them
# skip and say why.
set -euo pipefail
missing=()
command -v exiftool >/dev/null 2>&1 || missing+=(libimage-exiftool-perl)
command -v ffprobe >/dev/null 2>&1 || missing+=(ffmpeg)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "note: install ${missing[*]} to run the exiftool, ffprobe and browser tests (they skip without it)" >&2
fi
