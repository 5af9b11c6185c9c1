#!/usr/bin/env bash
# Part of `pnpm test`: the demo report test (examples/test/demoReport.test.ts) opens the page in Debian's headless
# chromium. Installs it when it is not on the PATH (apt-get; sudo when not root). Never fails the run: without
# chromium that one test fails and says what to install.
set -uo pipefail
command -v chromium >/dev/null 2>&1 && exit 0
echo "chromium not on the PATH (the demo report test needs it); installing Debian's chromium"
apt=(env DEBIAN_FRONTEND=noninteractive apt-get)
if [ "$(id -u)" -ne 0 ]; then apt=(sudo "${apt[@]}"); fi
# Without a fresh package index the install can fail on a new machine: update once and retry then.
"${apt[@]}" install -y chromium || { "${apt[@]}" update && "${apt[@]}" install -y chromium; } ||
  echo "could not install chromium: the demo report test will fail"
exit 0
