// Lifecycle rule deleting exported files after N days, on an existing account.
// A storage account has ONE management policy ('default'): deploying this
// replaces any lifecycle rules already set on that account.

param storageAccountName string

@description('Blob prefix, starting with the container name, e.g. "exports/" or "exports/segment/".')
param prefix string

@minValue(1)
param expireAfterDays int

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource policy 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'expire-exported-files'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                prefix
              ]
            }
            actions: {
              baseBlob: {
                // Files are written once and never modified, so creation time is their age.
                delete: {
                  daysAfterCreationGreaterThan: expireAfterDays
                }
              }
            }
          }
        }
      ]
    }
  }
}
