#!/bin/sh
# azd preprovision hook: check the azd environment before ARM sees it, and say in
# one line per problem what to set. infra/main.bicep refuses the same mistakes
# (its parameter limits and checks), but with ARM's wording and only once the
# deployment has started. azd passes the environment's values as variables.
# Never prints a value: some are secrets.
set -u

errors=0
fail() {
  echo "preprovision: $1" >&2
  errors=$((errors + 1))
}
require() { # NAME what-it-is
  eval "value=\${$1:-}"
  if [ -z "$value" ]; then
    fail "$1 is not set: azd env set $1 <$2>"
  fi
}

require ETL_API_ENDPOINT "ETL API base URL, https://..."
require ETL_API_TOKEN "ETL API token"

case "${EXPORT_FORMAT:-}" in
  csv | json | parquet) ;;
  "") fail "EXPORT_FORMAT is not set: azd env set EXPORT_FORMAT csv|json|parquet" ;;
  *) fail "EXPORT_FORMAT must be csv, json or parquet: azd env set EXPORT_FORMAT csv|json|parquet" ;;
esac

case "${USE_MANAGED_IDENTITY_DESTINATION:-false}" in
  true)
    require DESTINATION_STORAGE_ACCOUNT_NAME "existing destination storage account"
    require DESTINATION_CONTAINER "existing destination container"
    ;;
  false | "")
    require BLOB_SAS_URL "container SAS URL with sp=rcwl (docs/deploy.md section 2)"
    ;;
  *) fail "USE_MANAGED_IDENTITY_DESTINATION must be true or false: azd env set USE_MANAGED_IDENTITY_DESTINATION false" ;;
esac

case "${EXPIRE_AFTER_DAYS:-0}" in
  "" | *[!0-9]*) fail "EXPIRE_AFTER_DAYS must be a whole number of days, 0 to keep files: azd env set EXPIRE_AFTER_DAYS 0" ;;
esac

case "${KEY_VAULT_PURGE_PROTECTION:-false}" in
  true | false) ;;
  *) fail "KEY_VAULT_PURGE_PROTECTION must be true or false: azd env set KEY_VAULT_PURGE_PROTECTION true" ;;
esac

# whole_number NAME LOW HIGH example: the value, when set, is a whole number in [LOW, HIGH]
whole_number() {
  eval "value=\${$1:-}"
  case "$value" in
    "") return ;;
    *[!0-9]*) ;;
    *)
      # at most 4 digits, so the comparison below cannot overflow
      if [ "${#value}" -le 4 ] && [ "$value" -ge "$2" ] && [ "$value" -le "$3" ]; then
        return
      fi
      ;;
  esac
  fail "$1 must be a whole number from $2 to $3: azd env set $1 $4"
}

whole_number MAXIMUM_INSTANCE_COUNT 1 1000 40
whole_number QUEUE_BATCH_SIZE 0 32 0

case "${INSTANCE_MEMORY_MB:-2048}" in
  512 | 2048 | 4096) ;;
  *) fail "INSTANCE_MEMORY_MB must be 512, 2048 or 4096: azd env set INSTANCE_MEMORY_MB 2048" ;;
esac

# VERIFY_SCHEDULE: empty (off) or six NCRONTAB fields, seconds first. Counted
# with globbing off, so a * is a field and never a file name.
if [ -n "${VERIFY_SCHEDULE:-}" ]; then
  set -f
  # shellcheck disable=SC2086 # split into fields on purpose
  set -- $VERIFY_SCHEDULE
  set +f
  if [ "$#" -ne 6 ]; then
    fail "VERIFY_SCHEDULE must be six NCRONTAB fields with seconds, or empty for off: azd env set VERIFY_SCHEDULE '0 30 3 * * *'"
  fi
fi

if [ "$errors" -gt 0 ]; then
  echo "preprovision: $errors setting(s) to fix before provisioning; nothing was deployed" >&2
  exit 1
fi
echo "preprovision: the azd environment has what the templates need"
