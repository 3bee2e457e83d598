// Role assignments for the function app's system-assigned identity (and,
// optionally, for the deploying user so they can run the CLI check and
// rotate secrets). The user-assigned identity that resolves the app's Key Vault
// references (@Microsoft.KeyVault(...) app settings) is granted in core/keyvault.bicep.

param storageAccountName string
param keyVaultName string
param applicationInsightsName string

@description('Object id of the function app\'s managed identity.')
param appPrincipalId string

@description('Object id of a user to grant data access for local checks and secret rotation; empty for none.')
param userPrincipalId string = ''

// Built-in role definition ids.
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

// Host storage (blob leases for the timer, deployment package); the work queue
// EXPORT_QUEUE: the planner adds messages, the host's queue trigger (an
// identity-based AzureWebJobsStorage connection) reads, updates and deletes them
// and moves a failed one to <queue>-poison; `status` and the queue metrics read
// both queues' depth. Storage Queue Data Contributor covers all of it, and lets
// the host and the CLI create a queue that is missing. The narrower set, if your
// policy asks for it: Storage Queue Data Reader + Storage Queue Data Message
// Processor (what the queue trigger's documentation lists) + Storage Queue Data
// Message Sender (the planner's adds, the move to poison); then no queue can be
// created at run time, so both must exist (core/storage.bicep creates them).
// The position and destination tables: Storage Table Data Contributor.
var appStorageRoles = [
  roles.storageBlobDataOwner
  roles.storageQueueDataContributor
  roles.storageTableDataContributor
]

// The deploying user runs the CLI against the app storage: check, status (queue
// depth), plan, destinations add/list, the poison queue runbook.
var userStorageRoles = [
  roles.storageBlobDataContributor
  roles.storageQueueDataContributor
  roles.storageTableDataContributor
]

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource appStorage 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in appStorageRoles: {
  name: guid(storage.id, appPrincipalId, roleId)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}]

// Key Vault Secrets User (read secret values, nothing else) for the system-assigned
// identity: the exporter reads the @kv:NAME references of its named destinations
// from KEY_VAULT_URL at run time with DefaultAzureCredential, which is this
// identity (it is given no client id). The app settings' Key Vault references do
// not depend on it: they resolve with the user-assigned identity, granted before
// the app existed (core/keyvault.bicep).
resource appSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, appPrincipalId, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Application Insights has local auth disabled: telemetry is sent with the identity.
resource appTelemetry 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, appPrincipalId, roles.monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource userStorage 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in userStorageRoles: if (!empty(userPrincipalId)) {
  name: guid(storage.id, userPrincipalId, roleId)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
    principalId: userPrincipalId
  }
}]

resource userSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(userPrincipalId)) {
  name: guid(vault.id, userPrincipalId, roles.keyVaultSecretsOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsOfficer)
    principalId: userPrincipalId
  }
}
