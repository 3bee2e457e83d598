// Azure Monitor workbook over the exporter's telemetry, and three log alerts:
// the export falls behind, runs fail, no run succeeds.

param location string
param tags object = {}
param applicationInsightsName string

@description('Name of the alert rule and prefix of the action group.')
param namePrefix string

@description('Email for the alerts; empty = they fire without notifying anyone.')
param alertEmail string = ''

@description('Alert when the export lag (seconds) stays above this.')
param lagThresholdSeconds int = 1200

@allowed(['PT30M', 'PT45M', 'PT1H', 'PT2H', 'PT3H', 'PT6H'])
@description('Alert when no run succeeded for this long. Three 10-minute ticks by default; raise it with a slower EXPORT_SCHEDULE.')
param missingRunWindow string = 'PT30M'

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
    // Opened from Azure Monitor → Workbooks rather than from the Application
    // Insights resource, a workbook queries its fallbackResourceIds: point them at
    // this resource, or the charts there have nothing to query.
    serializedData: string(union(loadJsonContent('../workbook.json'), {
      fallbackResourceIds: [
        applicationInsights.id
      ]
    }))
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

// Lag is only recorded by runs that get as far as reading their state. Two more
// rules cover the rest, over the app's own metrics. Log alert queries start from
// a table and keep its timestamp: the rule aggregates the measure per window.
//
// Runs that ended with an error (exporter.failed_runs, a delta counter: one row
// per export interval in which runs failed).
resource failedRunsAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-${namePrefix}-failed-runs'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'ETL exporter runs are failing (${namePrefix})'
    description: 'At least one run ended with an error (exporter.failed_runs) in the last 30 minutes.'
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
          query: 'customMetrics\n| where name == "exporter.failed_runs"\n| project timestamp, failed_runs = valueSum\n'
          timeAggregation: 'Total'
          metricMeasureColumn: 'failed_runs'
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

// No run finished cleanly: every run failed, the app is stopped or cannot start,
// or a run stopped on its settings (an unresolved Key Vault reference) before it
// recorded anything. Counts the rows of successful runs (exporter.run_duration_seconds
// with outcome ok, one row per export interval that had one); a window without
// any counts 0, which is how a log alert sees missing data.
resource missingRunsAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-${namePrefix}-no-successful-run'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'ETL exporter has no successful run (${namePrefix})'
    description: 'No run ended successfully (exporter.run_duration_seconds, outcome ok) in the last ${missingRunWindow}. The schedule runs every 10 minutes.'
    severity: 2
    enabled: true
    scopes: [
      applicationInsights.id
    ]
    evaluationFrequency: 'PT15M'
    windowSize: missingRunWindow
    criteria: {
      allOf: [
        {
          query: 'customMetrics\n| where name == "exporter.run_duration_seconds" and tostring(customDimensions["outcome"]) == "ok"\n| project timestamp, runs = valueCount\n'
          timeAggregation: 'Count'
          operator: 'LessThan'
          threshold: 1
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
output missingRunsAlertName string = missingRunsAlert.name
