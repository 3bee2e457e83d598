// Key Vault (RBAC authorization) holding the exporter's two secrets. The app
// reads them through Key Vault references in its app settings.

param name string
param location string
param tags object = {}

@secure()
@description('Bearer token for the ETL API.')
param etlApiToken string

@secure()
@description('Container SAS URL of the destination (r,c,w,l).')
param blobSasUrl string = ''

@description('Store blob-sas-url (false when the app writes with its managed identity).')
param storeBlobSasUrl bool = true

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    publicNetworkAccess: 'Enabled'
  }
}

resource etlApiTokenSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'etl-api-token' // referenced by ETL_API_TOKEN in app/function.bicep
  properties: {
    value: etlApiToken
    contentType: 'text/plain'
  }
}

resource blobSasUrlSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (storeBlobSasUrl) {
  parent: vault
  name: 'blob-sas-url' // referenced by BLOB_SAS_URL in app/function.bicep
  properties: {
    value: blobSasUrl
    contentType: 'text/plain'
  }
}

// Names and the vault URI only: secret values never leave this module.
output name string = vault.name
output id string = vault.id
output uri string = vault.properties.vaultUri
