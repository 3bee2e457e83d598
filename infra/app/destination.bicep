// Managed-identity destination: lets the function app write into an existing
// container, and optionally expires old files there. Deployed at the scope of
// the destination account's resource group.

// Checked before the app is configured (app/destination-account.bicep); the
// same limits here keep the existing references below from getting an empty name.
@minLength(3)
@maxLength(24)
param storageAccountName string

@minLength(3)
@maxLength(63)
param containerName string

@description('Object id of the function app\'s managed identity.')
param appPrincipalId string

@description('Folder inside the container (BLOB_PATH), without leading or trailing "/".')
param blobPath string = ''

@description('Delete exported files older than this many days; 0 keeps them forever.')
@minValue(0)
param expireAfterDays int = 0

@description('Deploy the lifecycle rule: true when expireAfterDays > 0, and still true after it went back to 0 so the rule already on the account is deployed disabled.')
param manageLifecycleRule bool = expireAfterDays > 0

var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName

  resource blobService 'blobServices' existing = {
    name: 'default'

    resource container 'containers' existing = {
      name: containerName
    }
  }
}

// Scoped to the one container, not the account.
resource writer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account::blobService::container.id, appPrincipalId, storageBlobDataContributor)
  scope: account::blobService::container
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

module lifecycle '../core/lifecycle.bicep' = if (manageLifecycleRule) {
  name: 'destination-lifecycle'
  params: {
    storageAccountName: account.name
    prefix: empty(blobPath) ? '${containerName}/' : '${containerName}/${blobPath}/'
    expireAfterDays: expireAfterDays
  }
}

output containerId string = account::blobService::container.id
