#!/bin/sh
# Run by Ecosys in the app root before it removes the app's files.
set -eu
rm -rf config
echo "Journal uninstalled"
