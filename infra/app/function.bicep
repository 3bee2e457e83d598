// The exporter: a Flex Consumption (FC1) Linux function app, Python 3.11, a
// system-assigned identity for storage, telemetry and the destination, and a
// user-assigned one that resolves the Key Vault references in its app settings.

param name string
param planName string
param location string
param tags object = {}

param storageAccountName string
param deploymentContainerName string
param applicationInsightsName string

@description('Vault holding the secrets etl-api-token and blob-sas-url (core/keyvault.bicep).')
param keyVaultName string

@description('URI of that vault (KEY_VAULT_URL): the app reads the @kv:NAME secret references of its destinations there, with its system-assigned identity.')
param keyVaultUri string

@description('Resource id of the user-assigned identity that already has Key Vault Secrets User on the vault (core/identity.bicep).')
param keyVaultReferenceIdentityId string

@description('Object id of a user granted data access for local checks; empty for none.')
param userPrincipalId string = ''

// --- exporter configuration (see docs/deploy.md for each setting) ---
param etlApiEndpoint string

@allowed(['csv', 'json', 'parquet'])
param exportFormat string

param blobPath string = ''
param exportStart string = ''
param stateTableName string = 'exporterpositions'
param destinationsTableName string = 'exporterdestinations'
param exportQueueName string = 'export-units'
param exportSchedule string = '0 */10 * * * *'

@description('NCRONTAB of the scheduled verify; empty = off.')
param verifySchedule string = ''

// --- scale (see infra/README.md, "Sizing") ---
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@minValue(0)
@maxValue(32)
@description('Overrides host.json extensions.queues.batchSize when > 0; 0 = host.json decides.')
param queueBatchSize int = 0

@allowed(['none', 'gzip'])
param exportCompression string = 'none'

@allowed(['snappy', 'zstd', 'none'])
param parquetCompression string = 'snappy'

param csvEscapeFormulas bool = false

// EXPORT_MODE, chosen in main.bicep (queue there: the timer plans, the queue trigger runs).
@allowed(['queue', 'inline'])
param exportMode string

@description('Write with the app identity to BLOB_ACCOUNT_URL/BLOB_CONTAINER instead of the SAS URL.')
param useManagedIdentityDestination bool = false

@description('Blob endpoint of the managed-identity destination account (app/destination-account.bicep); empty otherwise.')
param destinationBlobEndpoint string = ''
param destinationContainer string = ''

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true // Linux
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'exporter' })
  kind: 'functionapp,linux'
  // System-assigned: storage, telemetry, destination (every client that gets a
  // token without a client id). User-assigned: Key Vault references only. It was
  // granted access to the vault before this app was created, so the references
  // resolve on the first start (a system-assigned identity only exists once the
  // app does, and a reference that failed is not retried until a refresh).
  identity: {
    type: 'SystemAssigned, UserAssigned'
    userAssignedIdentities: {
      '${keyVaultReferenceIdentityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: keyVaultReferenceIdentityId
    siteConfig: {
      minTlsVersion: '1.2'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      scaleAndConcurrency: {
        // The cap on scale-out: the queue trigger's instances (the timer runs
        // as a singleton). Flex has no per-instance concurrency setting for
        // queue triggers (scaleAndConcurrency.triggers only knows http): a
        // queue-triggered instance runs up to batchSize + newBatchThreshold
        // messages at once, both in host.json (queueBatchSize overrides the first).
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

module rbac 'rbac.bicep' = {
  name: 'exporter-rbac'
  params: {
    storageAccountName: storage.name
    keyVaultName: keyVaultName
    applicationInsightsName: applicationInsights.name
    appPrincipalId: app.identity.principalId
    userPrincipalId: userPrincipalId
  }
}

// The settings the exporter reads: exactly the names in its settings module,
// with the same defaults. AzureWebJobsStorage is given in its identity-based
// form (AzureWebJobsStorage__*): the host uses it, and the exporter finds its
// position table through it. Empty string = unset.
var exporterSettings = {
  'ETL_API_ENDPOINT': etlApiEndpoint
  'ETL_API_TOKEN': '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=etl-api-token)'
  'EXPORT_FORMAT': exportFormat
  'BLOB_SAS_URL': useManagedIdentityDestination ? '' : '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=blob-sas-url)'
  'BLOB_ACCOUNT_URL': useManagedIdentityDestination ? destinationBlobEndpoint : ''
  'BLOB_CONTAINER': useManagedIdentityDestination ? destinationContainer : ''
  'BLOB_PATH': blobPath
  'AzureWebJobsStorage__accountName': storage.name
  'AzureWebJobsStorage__blobServiceUri': storage.properties.primaryEndpoints.blob
  'AzureWebJobsStorage__queueServiceUri': storage.properties.primaryEndpoints.queue
  'AzureWebJobsStorage__tableServiceUri': storage.properties.primaryEndpoints.table
  'AzureWebJobsStorage__credential': 'managedidentity'
  'STATE_TABLE': stateTableName
  'DESTINATIONS_TABLE': destinationsTableName
  'KEY_VAULT_URL': keyVaultUri
  'EXPORT_QUEUE': exportQueueName
  'WORK_LEASE_SECONDS': '60'
  'EXPORT_SCHEDULE': exportSchedule
  'VERIFY_SCHEDULE': verifySchedule
  'EXPORT_START': exportStart
  'SETTLE_SECONDS': '60'
  'MAX_WINDOWS_PER_RUN': '36'
  'RUN_BUDGET_SECONDS': '480'
  'MAX_FILE_BYTES': '268435456'
  'MAX_FILE_ROWS': '1000000'
  'EXPORT_COMPRESSION': exportCompression
  'PARQUET_COMPRESSION': parquetCompression
  'CSV_ESCAPE_FORMULAS': csvEscapeFormulas ? 'true' : 'false'
  'MAX_CALL_BYTES': '65536'
  'MAX_PAGE_BYTES': '67108864'
  'ETL_PAGE_TIMEOUT_SECONDS': '60'
  'UNIT_BUDGET_SECONDS': '100'
  'MAX_PAGES_PER_WINDOW': '10000'
  'APPLICATIONINSIGHTS_CONNECTION_STRING': applicationInsights.properties.ConnectionString
  'EXPORT_MODE': exportMode
}

// Platform settings the exporter does not read. Flex Consumption takes the
// runtime and version from functionAppConfig and rejects
// FUNCTIONS_WORKER_RUNTIME / FUNCTIONS_EXTENSION_VERSION / WEBSITE_RUN_FROM_PACKAGE.
var platformSettings = union({
  // Application Insights accepts Entra ID telemetry only: the host and the
  // OpenTelemetry exporter both sign in with the system-assigned identity.
  'APPLICATIONINSIGHTS_AUTHENTICATION_STRING': 'Authorization=AAD'
  // host.json has telemetryMode OpenTelemetry. The Python worker then reports
  // OpenTelemetry enabled, so the host stops relaying the worker's log lines
  // (function_app.py exports them itself) and passes its trace context to the
  // invocation. Without it every line lands twice and host and app spans are not
  // linked. Not PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: that makes the worker
  // start a second Azure Monitor exporter beside the one in function_app.py.
  'PYTHON_ENABLE_OPENTELEMETRY': 'true'
}, queueBatchSize > 0 ? {
  // A host.json value overridden by an app setting (AzureFunctionsJobHost__ + its
  // path with __): the per-instance batch of the queue trigger, set at deployment.
  'AzureFunctionsJobHost__extensions__queues__batchSize': string(queueBatchSize)
} : {})

resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: app
  name: 'appsettings'
  properties: union(platformSettings, exporterSettings)
  // The host's identity-based connections (storage, Application Insights) work
  // from its first start when the roles are there first. The Key Vault
  // references do not depend on this: their identity was granted before the app.
  dependsOn: [
    rbac
  ]
}

output name string = app.name
output id string = app.id
output principalId string = app.identity.principalId
output defaultHostName string = app.properties.defaultHostName
