// Azure Monitor workbook over the exporter's telemetry, and the log alerts: a
// destination falls behind, runs fail, no run succeeds, a message is poisoned,
// the work queue's oldest message waits too long, a verify finds problems.
//
// Metric attributes (OpenTelemetry) arrive in customMetrics as customDimensions
// (the Azure Monitor exporter writes a data point's attributes as its
// properties): customDimensions["destination"], ["type"], ["queue"], ["kind"].
// Gauges and counters give one row per export interval with valueCount 1
// (value = valueSum = valueMin = valueMax); histograms aggregate (valueMax is the
// largest of the interval). A rule with `dimensions` evaluates each value of that
// column as its own time series, so one destination behind fires for that one.

param location string
param tags object = {}
param applicationInsightsName string

@description('Name of the alert rule and prefix of the action group.')
param namePrefix string

@description('Email for the alerts; empty = they fire without notifying anyone.')
param alertEmail string = ''

@description('Alert when the export lag (seconds) stays above this.')
param lagThresholdSeconds int = 1200

@description('Alert when the oldest message of the work queue is older than this (seconds): two windows by default, units are waiting for an instance (maximumInstanceCount too low, or the queue trigger is not running).')
param queueAgeThresholdSeconds int = 1200

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

// Lag is a gauge per destination and type: now minus the end of the last
// exported window. Split by destination, it fires for any destination whose max
// over 15 minutes is above the threshold in two windows in a row. (A deployment
// whose code records no destination attribute yet has one series, "".)
resource lagAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-${namePrefix}-export-lag'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'ETL exporter: a destination is falling behind (${namePrefix})'
    description: 'Max exporter.lag_seconds of a destination over 15 minutes above ${lagThresholdSeconds} s in two consecutive windows.'
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
          query: 'customMetrics\n| where name == "exporter.lag_seconds"\n| project timestamp, destination = tostring(customDimensions["destination"]), lag_seconds = valueMax\n'
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'lag_seconds'
          dimensions: [
            {
              name: 'destination'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
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

// A message the host gave up on: it failed maxDequeueCount times (host.json) and
// was moved to <queue>-poison. exporter.queue.poison is a gauge (messages in the
// poison queue) that the planner records at each tick, so the rule keeps firing
// until someone reads and clears the poison queue (docs/operations.md). The unit
// itself is planned again at a later tick: this is a signal to look, not a loss.
resource poisonAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-${namePrefix}-poison-message'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'ETL exporter has a poison message (${namePrefix})'
    description: 'exporter.queue.poison above 0 in the last 30 minutes: a work-queue message failed maxDequeueCount times and sits in the poison queue. Read it and clear it (docs/operations.md).'
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
          query: 'customMetrics\n| where name == "exporter.queue.poison"\n| project timestamp, poison = valueMax\n'
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'poison'
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

// Units wait in the work queue: its oldest message is older than two windows
// (exporter.queue.oldest_age_seconds, recorded by the planner per queue). The
// instances do not keep up (maximumInstanceCount, per-instance concurrency) or the
// queue trigger does not run at all.
resource queueAgeAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-${namePrefix}-queue-age'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'ETL exporter work queue is not drained (${namePrefix})'
    description: 'Oldest work-queue message older than ${queueAgeThresholdSeconds} s in two consecutive 15-minute windows (exporter.queue.oldest_age_seconds).'
    severity: 3
    enabled: true
    scopes: [
      applicationInsights.id
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: 'customMetrics\n| where name == "exporter.queue.oldest_age_seconds"\n| project timestamp, oldest_age_seconds = valueMax\n'
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'oldest_age_seconds'
          operator: 'GreaterThan'
          threshold: queueAgeThresholdSeconds
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

// A verify (the daily VERIFY_SCHEDULE run, or any verify that sends telemetry)
// found problems: exporter.verify.problems, a gauge per destination and problem
// kind. The window is a day so that one daily run keeps the alert up until the
// next one; split by destination and kind, the alert names where and what. The lines themselves are in the verify's
// log (traces) and in `python -m shared.cli verify` (docs/operations.md).
resource verifyAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-${namePrefix}-verify-problems'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'ETL exporter verify found problems (${namePrefix})'
    description: 'exporter.verify.problems above 0 in the last 24 hours: a file of the destination is missing, changed or foreign, or its manifest chain is broken (kind not_audited: it could not be audited, see the verify NAME: not audited log line). Run python -m shared.cli verify --destination NAME for the lines.'
    severity: 2
    enabled: true
    scopes: [
      applicationInsights.id
    ]
    evaluationFrequency: 'PT1H'
    windowSize: 'PT24H'
    criteria: {
      allOf: [
        {
          query: 'customMetrics\n| where name == "exporter.verify.problems"\n| project timestamp, destination = tostring(customDimensions["destination"]), kind = tostring(customDimensions["kind"]), problems = valueMax\n'
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'problems'
          dimensions: [
            {
              name: 'destination'
              operator: 'Include'
              values: [
                '*'
              ]
            }
            {
              name: 'kind'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
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
output missingRunsAlertName string = missingRunsAlert.name
output poisonAlertName string = poisonAlert.name
output queueAgeAlertName string = queueAgeAlert.name
output verifyAlertName string = verifyAlert.name
