// Key Vault (RBAC authorization) holding the exporter's two secrets. The app
// reads them through Key Vault references in its app settings, resolved with
// the user-assigned identity granted Key Vault Secrets User here, before the
// app exists (core/identity.bicep).

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

@description('Principal id of the identity that resolves the app\'s Key Vault references (Key Vault Secrets User).')
param secretsUserPrincipalId string

var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'

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

// The app's Key Vault references resolve with this identity. The app module
// uses this module's outputs, so ARM creates the app only after this grant.
resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, secretsUserPrincipalId, keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: secretsUserPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Names and the vault URI only: secret values never leave this module.
output name string = vault.name
output id string = vault.id
output uri string = vault.properties.vaultUri
