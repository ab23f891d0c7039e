#!/usr/bin/env bash
# Run checkov (offline) over infra/terraform.
#
# checkov lives in its own virtualenv (.venv-checkov) because its dependency
# tree (boto3, networkx, a pinned pydantic range...) must not disturb the app's
# .venv. First run installs it (about 60 s); later runs reuse it.
#
# Usage (from the repo root):  infra/checkov.sh            # install if needed, then scan
#                              infra/checkov.sh --install  # only install
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${CHECKOV_VENV:-$repo_root/.venv-checkov}"
checkov_version="${CHECKOV_VERSION:-3.3.30}"
python="${PYTHON:-python3}"

if [[ ! -x "$venv/bin/checkov" ]]; then
  echo "installing checkov==$checkov_version into $venv (first run, about a minute)" >&2
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "checkov==$checkov_version"
fi

if [[ "${1:-}" == "--install" ]]; then
  exit 0
fi

cd "$repo_root"
# --skip-download: no Bridgecrew/Prisma platform calls, no policy download (offline).
# Skipped checks and the reason for each are in infra/terraform/.checkov.yaml.
exec "$venv/bin/checkov" \
  --config-file infra/terraform/.checkov.yaml \
  --directory infra/terraform \
  --skip-download \
  --compact \
  --quiet \
  "$@"
