#!/bin/sh
# The browser the dashboard tests drive (Debian's chromium + chromium-driver), installed where it is
# missing and this user may install packages; otherwise those tests are skipped (and fail under CI=1).
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null && command -v apt-get >/dev/null 2>&1; then
    sudo -n apt-get update -qq && sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
else
    echo "install_browser: no chromium here and no way to install it; the dashboard's browser tests will be skipped" >&2
fi
exit 0
