#!/bin/sh
# Run by Ecosys (with the user's consent) in the app root after unpacking.
set -eu
mkdir -p config
echo "greeting=Bonjour" > config/journal.conf
echo "Journal installed"
