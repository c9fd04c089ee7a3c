#!/bin/sh
# Journal, a tout-en-un app: started with the app root as current folder; ./data is synced by Ecosys.
set -eu
mkdir -p data
if [ "$#" -gt 0 ]; then
  printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >> data/journal.txt
  echo "written to data/journal.txt"
else
  cat data/journal.txt 2>/dev/null || echo "the journal is empty"
fi
