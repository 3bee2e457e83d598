// Key Vault (RBAC authorization) for the exporter's secrets, which
// core/keyvault-secret.bicep writes. The app reads them through Key Vault
// references in its app settings, resolved with the user-assigned identity
// granted Key Vault Secrets User here, before the app exists (core/identity.bicep).

param name string
param location string
param tags object = {}

@description('Principal id of the identity that resolves the app\'s Key Vault references (Key Vault Secrets User).')
param secretsUserPrincipalId string

@description('Purge protection: a deleted vault and its secrets cannot be purged before the retention ends. Irreversible once on; turn it on for production.')
param enablePurgeProtection bool = false

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
    softDeleteRetentionInDays: 7 // fixed once the vault exists
    // ARM refuses false once it is on, and the documented form is to send true or
    // leave the property out: null leaves it out.
    enablePurgeProtection: enablePurgeProtection ? true : null
    publicNetworkAccess: 'Enabled'
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

// Names and the vault URI only.
output name string = vault.name
output id string = vault.id
output uri string = vault.properties.vaultUri
