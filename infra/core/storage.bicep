// The function app's own storage account (AzureWebJobsStorage): host storage
// (timer locks), the Flex deployment package, the exporter's position and
// destination tables, and the work queue with its poison queue. Identity access only.

@description('Storage account name (3-24 lower-case letters and digits).')
param name string
param location string
param tags object = {}

@description('Blob container that Flex Consumption deploys the app package into.')
param deploymentContainerName string

@description('Table holding per-type file positions (the app\'s STATE_TABLE).')
param stateTableName string

@description('Table holding the named destinations (the app\'s DESTINATIONS_TABLE).')
param destinationsTableName string

@description('Queue of export units (the app\'s EXPORT_QUEUE) that the queue trigger reads.')
param exportQueueName string

@description('Where the Functions host moves a message after maxDequeueCount failed attempts: always <queue>-poison.')
param poisonQueueName string

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

    // Named destinations (`python -m shared.cli destinations add ...`). Holds
    // settings and secret references (@env:/@kv:), never a secret value.
    resource destinationsTable 'tables' = {
      name: destinationsTableName
    }
  }

  // The planner (timer) enqueues one message per due (destination, type, window);
  // the queue trigger runs it. The host creates both queues on demand too; creating
  // them here lets `status` and the alerts see them before the first tick, and
  // makes the poison queue exist before anyone looks into it.
  resource queueService 'queueServices' = {
    name: 'default'

    resource exportQueue 'queues' = {
      name: exportQueueName
    }

    resource poisonQueue 'queues' = {
      name: poisonQueueName
    }
  }
}

output name string = storage.name
output id string = storage.id
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
