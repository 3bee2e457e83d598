#!/bin/sh
# azd postprovision hook: make the function app resolve its Key Vault references
# now and wait until they have. App Service caches a reference that failed to
# resolve (the app then sees the literal @Microsoft.KeyVault(...) text) and
# retries only on a configuration change, within 24 hours, or when asked with
# POST <app>/config/configreferences/appsettings/refresh. azd passes the
# deployment's outputs (AZURE_FUNCTION_APP_ID) as environment variables.
#
# Needs the Azure CLI, signed in (az login). Without it, prints the two commands
# to run by hand and exits 0: provisioning itself succeeded.
set -eu

api=2022-03-01
app_id=${AZURE_FUNCTION_APP_ID:-}
if [ -z "$app_id" ]; then
  echo "postprovision: AZURE_FUNCTION_APP_ID is not set; run 'azd provision' first" >&2
  exit 1
fi
refresh="$app_id/config/configreferences/appsettings/refresh?api-version=$api"
status="$app_id/config/configreferences/appsettings?api-version=$api"
attempts=${KEY_VAULT_REFERENCE_ATTEMPTS:-10}
pause=${KEY_VAULT_REFERENCE_PAUSE_SECONDS:-30}

if ! command -v az >/dev/null 2>&1 || ! az account show --output none >/dev/null 2>&1; then
  echo "postprovision: the Azure CLI is not installed or not signed in, so the app's Key Vault references were not refreshed. Run:" >&2
  echo "  az rest --method post --url \"$refresh\"" >&2
  echo "  az rest --method get --url \"$status\" --query \"value[].{setting:name, status:properties.status}\" -o table" >&2
  exit 0
fi

n=1
while :; do
  az rest --method post --url "$refresh" --output none
  pending=$(az rest --method get --url "$status" \
    --query "length(value[?properties.status != 'Resolved'])" --output tsv)
  if [ "$pending" = "0" ]; then
    echo "postprovision: every Key Vault reference of the app is resolved"
    exit 0
  fi
  if [ "$n" -ge "$attempts" ]; then
    echo "postprovision: $pending Key Vault reference(s) still not resolved after $n attempts:" >&2
    az rest --method get --url "$status" \
      --query "value[?properties.status != 'Resolved'].{setting:name, status:properties.status, details:properties.details}" \
      --output table >&2
    echo "postprovision: check the secret exists and id-<token> has Key Vault Secrets User on the vault (docs/deploy.md section 4), then run: azd hooks run postprovision" >&2
    exit 1
  fi
  echo "postprovision: $pending Key Vault reference(s) not resolved yet (role assignments can take minutes); retrying in ${pause}s"
  sleep "$pause"
  n=$((n + 1))
done
