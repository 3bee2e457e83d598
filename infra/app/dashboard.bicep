// Azure Monitor workbook over the exporter's telemetry, and an alert when the
// export falls behind.

param location string
param tags object = {}
param applicationInsightsName string

@description('Name of the alert rule and prefix of the action group.')
param namePrefix string

@description('Email for the lag alert; empty = the alert fires without notifying anyone.')
param alertEmail string = ''

@description('Alert when the export lag (seconds) stays above this.')
param lagThresholdSeconds int = 1200

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource workbook 'Microsoft.Insights/workbooks@2022-04-01' = {
  name: guid(resourceGroup().id, applicationInsights.id, 'exporter-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'ETL exporter (${namePrefix})'
    category: 'workbook'
    version: 'Notebook/1.0'
    sourceId: applicationInsights.id
    serializedData: loadTextContent('../workbook.json')
  }
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: 'ag-${namePrefix}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'exporter'
    enabled: true
    emailReceivers: [
      {
        name: 'exporter-owner'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

// Lag is a gauge: the age of the oldest due window not yet exported. It fires
// when the max over 15 minutes is above the threshold in two windows in a row.
resource lagAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-${namePrefix}-export-lag'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'ETL exporter is falling behind (${namePrefix})'
    description: 'Max exporter.lag_seconds over 15 minutes above ${lagThresholdSeconds} s in two consecutive windows.'
    severity: 2
    enabled: true
    scopes: [
      applicationInsights.id
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: 'customMetrics\n| where name == "exporter.lag_seconds"\n| project timestamp, lag_seconds = valueMax\n'
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'lag_seconds'
          operator: 'GreaterThan'
          threshold: lagThresholdSeconds
          failingPeriods: {
            numberOfEvaluationPeriods: 2
            minFailingPeriodsToAlert: 2
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: empty(alertEmail) ? [] : [
        actionGroup.id
      ]
    }
  }
}

// Lag is only recorded by runs that get as far as reading their state; a run that fails
// earlier (token refused, ETL API or state table unreachable) shows up here instead: failed
// runs in the last 30 minutes, or no run reporting at all for 30 minutes.
resource failedRunsAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-${namePrefix}-failed-runs'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'ETL exporter runs are failing or missing (${namePrefix})'
    description: 'Runs that ended with an error (exporter.failed_runs), or no exporter.run_duration_seconds at all, over 30 minutes.'
    severity: 2
    enabled: true
    scopes: [
      applicationInsights.id
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT30M'
    criteria: {
      allOf: [
        {
          query: 'let failed = toscalar(customMetrics | where name == "exporter.failed_runs" | summarize sum(valueSum));\nlet runs = toscalar(customMetrics | where name == "exporter.run_duration_seconds" | summarize sum(valueCount));\nprint problems = iff(isnull(runs) or runs == 0, 1.0, todouble(coalesce(failed, 0.0)))\n'
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'problems'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: empty(alertEmail) ? [] : [
        actionGroup.id
      ]
    }
  }
}

output workbookId string = workbook.id
output alertRuleName string = lagAlert.name
output failedRunsAlertName string = failedRunsAlert.name
