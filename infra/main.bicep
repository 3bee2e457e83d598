// ETL exporter: an Azure Functions app that exports calls from the ETL API into
// Blob containers: a timer plans units onto a Storage queue, a queue trigger runs
// them on as many Flex Consumption instances as the backlog needs. See infra/README.md and docs/deploy.md.
targetScope = 'resourceGroup'

@minLength(1)
@maxLength(64)
@description('Environment name (azd AZURE_ENV_NAME); seeds resource names and the azd-env-name tag.')
param environmentName string

// Regions that offer Flex Consumption (az functionapp list-flexconsumption-locations),
// as in the Azure-Samples Flex Consumption quickstarts. azd offers only these when it
// asks for a location; ARM refuses any other before creating anything. Add a region
// here when Flex Consumption reaches it.
@minLength(1)
@description('Region for all resources; must offer Flex Consumption.')
@allowed([
  'australiaeast'
  'australiasoutheast'
  'brazilsouth'
  'canadacentral'
  'centralindia'
  'centralus'
  'eastasia'
  'eastus'
  'eastus2'
  'francecentral'
  'germanywestcentral'
  'italynorth'
  'japaneast'
  'koreacentral'
  'northcentralus'
  'northeurope'
  'norwayeast'
  'southafricanorth'
  'southcentralus'
  'southeastasia'
  'southindia'
  'spaincentral'
  'swedencentral'
  'uaenorth'
  'uksouth'
  'ukwest'
  'westcentralus'
  'westeurope'
  'westus'
  'westus2'
  'westus3'
])
@metadata({
  azd: {
    type: 'location'
  }
})
param location string = resourceGroup().location

@minLength(1)
@description('ETL API base URL, e.g. https://etl.example.com (ETL_API_ENDPOINT).')
param etlApiEndpoint string

@secure()
@minLength(1)
@description('ETL API bearer token; stored in Key Vault as etl-api-token.')
param etlApiToken string

@secure()
@description('Destination container SAS URL (r,c,w,l); stored in Key Vault as blob-sas-url. Required unless useManagedIdentityDestination; not used then.')
param blobSasUrl string = ''

@allowed(['csv', 'json', 'parquet'])
@description('File format (EXPORT_FORMAT).')
param exportFormat string

@description('Folder inside the container, without leading or trailing "/" (BLOB_PATH).')
param blobPath string = ''

@description('RFC 3339 UTC time of the first window for a new destination; empty = the most recent due window (EXPORT_START).')
param exportStart string = ''

@description('Timer schedule, NCRONTAB with seconds (EXPORT_SCHEDULE).')
param exportSchedule string = '0 */10 * * * *'

@allowed(['none', 'gzip'])
@description('Compression of csv/json files (EXPORT_COMPRESSION).')
param exportCompression string = 'none'

@allowed(['snappy', 'zstd', 'none'])
@description('Parquet codec (PARQUET_COMPRESSION).')
param parquetCompression string = 'snappy'

@description('Escape spreadsheet formulas in CSV cells (CSV_ESCAPE_FORMULAS).')
param csvEscapeFormulas bool = false

@allowed(['queue', 'inline'])
@description('EXPORT_MODE: queue (the timer plans units on the export-units queue and the queue trigger runs them on every instance) or inline (the timer runs every due unit itself, as before).')
param exportMode string = 'queue'

@description('Write with the app\'s managed identity to destinationStorageAccountName/destinationContainer instead of the SAS URL.')
param useManagedIdentityDestination bool = false

@description('Existing destination storage account; required with useManagedIdentityDestination, not used otherwise.')
param destinationStorageAccountName string = ''

@description('Existing destination container; required with useManagedIdentityDestination, not used otherwise.')
param destinationContainer string = ''

@description('Resource group of the destination account; defaults to this one.')
param destinationResourceGroupName string = resourceGroup().name

@minValue(0)
@description('Delete exported files after this many days (lifecycle rule on the managed-identity destination); 0 = keep (a rule deployed before is then deployed disabled, see lifecycleRuleAccountName).')
param expireAfterDays int = 0

@description('Destination account on which an earlier deployment put the lifecycle rule (azd fills it from the LIFECYCLE_RULE_ACCOUNT_NAME output). On that account the rule keeps being deployed, disabled when expireAfterDays is 0; empty = none.')
param lifecycleRuleAccountName string = ''

@minValue(1)
@maxValue(1000)
@description('Most instances Flex Consumption may run at once (functionAppConfig.scaleAndConcurrency.maximumInstanceCount). Units in flight are at most 6 x destinations; instances needed = ceil(units in flight / units per instance). Sizing: infra/README.md.')
param maximumInstanceCount int = 40

@allowed([512, 2048, 4096])
@description('Memory per instance in MB (CPU and network scale with it). A unit streams in under ~300 MB; see infra/README.md before running more units per instance.')
param instanceMemoryMB int = 2048

@minValue(0)
@maxValue(32)
@description('Queue messages one instance fetches at a time (host.json extensions.queues.batchSize, overridden by the app setting AzureFunctionsJobHost__extensions__queues__batchSize); 0 = keep host.json\'s value. Units per instance = batchSize + newBatchThreshold. Sizing: infra/README.md.')
param queueBatchSize int = 0

@description('NCRONTAB (six fields) of the scheduled verify (VERIFY_SCHEDULE), e.g. 0 30 3 * * * for 03:30 UTC daily; empty = off.')
param verifySchedule string = ''

@description('Email notified by the alerts (export lag, failed runs, no successful run, poison message, queue age, verify problems); empty = no action group.')
param alertEmail string = ''

@description('Key Vault purge protection (KEY_VAULT_PURGE_PROTECTION). Turn it on for production: a deleted vault can then only be recovered, not purged, until its retention ends. Irreversible. See docs/deploy.md.')
param keyVaultPurgeProtection bool = false

@description('Object id of the deploying user (azd AZURE_PRINCIPAL_ID): gets data access to the app storage and Key Vault secrets. Empty for none.')
param principalId string = ''

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var tags = {
  'azd-env-name': environmentName
  application: 'etl-exporter'
}
var functionAppName = 'func-${resourceToken}'
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}'
var stateTableName = 'exporterpositions'
var destinationsTableName = 'exporterdestinations'
var exportQueueName = 'export-units'
// The Functions host moves a message that failed maxDequeueCount times to
// '<queue>-poison' (a fixed rule, not a setting).
var poisonQueueName = '${exportQueueName}-poison'
// The rule is deployed when it deletes files, and kept deployed (disabled at 0
// days) on an account that already has it: skipping it would leave the last
// enabled rule deleting files. Never on another account with expireAfterDays 0,
// since deploying it replaces that account's lifecycle policy.
var manageLifecycleRule = useManagedIdentityDestination && (expireAfterDays > 0 || (!empty(lifecycleRuleAccountName) && lifecycleRuleAccountName == destinationStorageAccountName))

module storage 'core/storage.bicep' = {
  name: 'storage'
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    stateTableName: stateTableName
    destinationsTableName: destinationsTableName
    exportQueueName: exportQueueName
    poisonQueueName: poisonQueueName
  }
}

module monitoring 'core/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
  }
}

// Resolves the app's Key Vault references. Created and granted access to the
// vault before the app exists, so the first resolution succeeds.
module keyVaultReferenceIdentity 'core/identity.bicep' = {
  name: 'identity'
  params: {
    name: 'id-${resourceToken}'
    location: location
    tags: tags
  }
}

module keyVault 'core/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    name: 'kv-${resourceToken}'
    location: location
    tags: tags
    secretsUserPrincipalId: keyVaultReferenceIdentity.outputs.principalId
    enablePurgeProtection: keyVaultPurgeProtection
  }
}

// The secrets the app's Key Vault references name. Each is written only where it
// is used, and its module refuses an empty value before writing (ARM rejects a
// secret without a value; an empty one would only fail the app's first run).
module etlApiTokenSecret 'core/keyvault-secret.bicep' = {
  name: 'secret-etl-api-token'
  params: {
    vaultName: keyVault.outputs.name
    name: 'etl-api-token' // referenced by ETL_API_TOKEN in app/function.bicep
    value: etlApiToken
  }
}

module blobSasUrlSecret 'core/keyvault-secret.bicep' = if (!useManagedIdentityDestination) {
  name: 'secret-blob-sas-url'
  params: {
    vaultName: keyVault.outputs.name
    name: 'blob-sas-url' // referenced by BLOB_SAS_URL in app/function.bicep
    value: blobSasUrl // required in SAS mode: an empty SAS URL stops the deployment here
  }
}

// Managed-identity destination: its names are checked and the account looked up
// before the app is configured (an empty or wrong name stops the deployment here).
module destinationAccount 'app/destination-account.bicep' = if (useManagedIdentityDestination) {
  name: 'destination-account'
  scope: resourceGroup(destinationResourceGroupName)
  params: {
    storageAccountName: destinationStorageAccountName
    containerName: destinationContainer
  }
}

module exporterApp 'app/function.bicep' = {
  name: 'function'
  params: {
    name: functionAppName
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    // keyVault.outputs: the app waits for the vault's role assignment
    keyVaultName: keyVault.outputs.name
    keyVaultUri: keyVault.outputs.uri
    keyVaultReferenceIdentityId: keyVaultReferenceIdentity.outputs.id
    userPrincipalId: principalId
    etlApiEndpoint: etlApiEndpoint
    exportFormat: exportFormat
    blobPath: blobPath
    exportStart: exportStart
    stateTableName: stateTableName
    destinationsTableName: destinationsTableName
    exportQueueName: exportQueueName
    exportSchedule: exportSchedule
    verifySchedule: verifySchedule
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    queueBatchSize: queueBatchSize
    exportCompression: exportCompression
    parquetCompression: parquetCompression
    csvEscapeFormulas: csvEscapeFormulas
    exportMode: exportMode
    useManagedIdentityDestination: useManagedIdentityDestination
    destinationBlobEndpoint: useManagedIdentityDestination ? destinationAccount.outputs.blobEndpoint : ''
    destinationContainer: useManagedIdentityDestination ? destinationAccount.outputs.containerName : ''
  }
  // Configure the app only once the secrets its references name are written.
  dependsOn: [
    etlApiTokenSecret
    blobSasUrlSecret
  ]
}

module destination 'app/destination.bicep' = if (useManagedIdentityDestination) {
  name: 'destination'
  scope: resourceGroup(destinationResourceGroupName)
  params: {
    storageAccountName: destinationStorageAccountName
    containerName: destinationContainer
    appPrincipalId: exporterApp.outputs.principalId
    blobPath: blobPath
    expireAfterDays: expireAfterDays
    manageLifecycleRule: manageLifecycleRule
  }
}

module dashboard 'app/dashboard.bicep' = {
  name: 'dashboard'
  params: {
    location: location
    tags: tags
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    namePrefix: resourceToken
    alertEmail: alertEmail
  }
}

// Names only: no connection strings, keys, SAS URLs or tokens.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = resourceGroup().name
output AZURE_FUNCTION_APP_NAME string = exporterApp.outputs.name
output AZURE_FUNCTION_APP_ID string = exporterApp.outputs.id
output SERVICE_EXPORTER_NAME string = exporterApp.outputs.name
output AZURE_FUNCTION_APP_PRINCIPAL_ID string = exporterApp.outputs.principalId
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_STORAGE_TABLE_ENDPOINT string = storage.outputs.tableEndpoint
output STATE_TABLE string = stateTableName
output DESTINATIONS_TABLE string = destinationsTableName
output EXPORT_QUEUE string = exportQueueName
output EXPORT_POISON_QUEUE string = poisonQueueName
output AZURE_APPLICATION_INSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
output AZURE_LOG_ANALYTICS_WORKSPACE_NAME string = monitoring.outputs.logAnalyticsName
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_KEY_VAULT_URI string = keyVault.outputs.uri
output AZURE_KEY_VAULT_REFERENCE_IDENTITY_NAME string = keyVaultReferenceIdentity.outputs.name
output AZURE_WORKBOOK_ID string = dashboard.outputs.workbookId
output AZURE_LAG_ALERT_NAME string = dashboard.outputs.alertRuleName
output AZURE_FAILED_RUNS_ALERT_NAME string = dashboard.outputs.failedRunsAlertName
output AZURE_NO_SUCCESSFUL_RUN_ALERT_NAME string = dashboard.outputs.missingRunsAlertName
output AZURE_POISON_ALERT_NAME string = dashboard.outputs.poisonAlertName
output AZURE_QUEUE_AGE_ALERT_NAME string = dashboard.outputs.queueAgeAlertName
output AZURE_VERIFY_ALERT_NAME string = dashboard.outputs.verifyAlertName
// Remembered by azd and passed back as lifecycleRuleAccountName next time.
output LIFECYCLE_RULE_ACCOUNT_NAME string = manageLifecycleRule ? destinationStorageAccountName : lifecycleRuleAccountName
