// User-assigned identity through which the function app resolves its Key Vault
// references. It exists, and is granted access to the vault, before the app
// does: a reference resolved by an identity that has no access yet fails, and
// App Service keeps that failure until the next refresh (docs/deploy.md).

param name string
param location string
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId
