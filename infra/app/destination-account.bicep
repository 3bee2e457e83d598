// Managed-identity destination, looked up before the function app is configured.
// The names must be valid and the account must exist and be readable by the
// deploying user, so an empty or mistyped name stops the deployment here rather
// than after the app got a BLOB_ACCOUNT_URL that leads nowhere. Deployed at the
// scope of the destination account's resource group; creates nothing.

@minLength(3)
@maxLength(24)
@description('Existing destination storage account (DESTINATION_STORAGE_ACCOUNT_NAME).')
param storageAccountName string

@minLength(3)
@maxLength(63)
@description('Existing destination container (DESTINATION_CONTAINER).')
param containerName string

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

// Reading a property makes ARM fetch the account: it fails here if there is none.
output blobEndpoint string = account.properties.primaryEndpoints.blob
output containerName string = containerName
