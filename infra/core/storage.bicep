// The function app's own storage account: host storage (timer locks), the Flex
// deployment package and the exporter's position table. Identity access only.

@description('Storage account name (3-24 lower-case letters and digits).')
param name string
param location string
param tags object = {}

@description('Blob container that Flex Consumption deploys the app package into.')
param deploymentContainerName string

@description('Table holding per-type file positions (the app\'s STATE_TABLE).')
param stateTableName string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false // every client (host, deployment, exporter) uses Entra ID
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }

  resource blobService 'blobServices' = {
    name: 'default'

    resource deploymentContainer 'containers' = {
      name: deploymentContainerName
    }
  }

  resource tableService 'tableServices' = {
    name: 'default'

    // The exporter also creates it if missing; creating it here lets a fresh
    // deployment be checked before the first timer run.
    resource stateTable 'tables' = {
      name: stateTableName
    }
  }
}

output name string = storage.name
output id string = storage.id
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
