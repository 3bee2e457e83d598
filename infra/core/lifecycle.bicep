// Lifecycle rule deleting exported files after N days, on an existing account.
// A storage account has ONE management policy ('default'): deploying this
// replaces any lifecycle rules already set on that account. With 0 days the rule
// is deployed disabled, so setting the days back to 0 stops the deletions
// instead of leaving the last enabled rule in place.

param storageAccountName string

@description('Blob prefix, starting with the container name, e.g. "exports/" or "exports/segment/".')
param prefix string

@minValue(0)
@description('Delete blobs under the prefix this many days after creation; 0 = keep them (rule disabled).')
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
          enabled: expireAfterDays > 0
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
                  // a disabled rule still needs a valid action
                  daysAfterCreationGreaterThan: max(expireAfterDays, 1)
                }
              }
            }
          }
        }
      ]
    }
  }
}
