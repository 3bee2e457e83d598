// One secret in the exporter's vault. ARM rejects a secret without a value, and
// an empty one would only show when the app first runs, so the value must not be
// empty: ARM checks that against this module's parameter before writing anything.

@description('The vault (core/keyvault.bicep).')
param vaultName string

@description('Secret name, as the app\'s Key Vault reference spells it.')
param name string

@secure()
@minLength(1)
@description('The secret value. Never an output.')
param value string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: name
  properties: {
    value: value
    contentType: 'text/plain'
  }
}

output name string = secret.name
