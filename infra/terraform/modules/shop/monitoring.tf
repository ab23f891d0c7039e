locals {
  notification_channels = concat(
    var.notification_channels,
    [for channel in google_monitoring_notification_channel.email : channel.id],
  )
  runbook = "docs/runbooks/incident-triage.md"

  # The app logs one JSON object per line; `event` names what happened. Each metric
  # counts log entries of one event from the shop's functions.
  log_metrics = {
    webhook_failures = {
      event       = "webhook.failed"
      description = "Stripe webhook deliveries the shop failed to process."
      # Also any ERROR of the webhook function, so an unexpected exception that never
      # reached the app's own `webhook.failed` log line still counts; but not the
      # events that have their own alert below.
      extra_filter = " OR (resource.labels.service_name=\"${var.name_prefix}-stripe-webhook\" AND severity>=ERROR AND NOT jsonPayload.event=(\"purchase.rejected\" OR \"fraud.early_warning\" OR \"fulfillment.email_unusable\"))"
    }
    rejected_orders = {
      event        = "purchase.rejected"
      description  = "Paid Checkout Sessions rejected: not the configured price, amount, currency, mode or livemode, or unknown to Stripe."
      extra_filter = ""
    }
    fraud_warnings = {
      event        = "fraud.early_warning"
      description  = "Stripe Radar early fraud warnings on our charges (license suspended)."
      extra_filter = ""
    }
    dead_emails = {
      event        = "email.dead"
      description  = "E-mail jobs that exhausted their retries."
      extra_filter = ""
    }
    orders_without_email = {
      event        = "fulfillment.email_unusable"
      description  = "Paid orders fulfilled without a usable buyer e-mail address (support must set one)."
      extra_filter = ""
    }
    reconcile_repairs = {
      event        = "reconcile.repaired"
      description  = "Missed webhooks the reconciliation repaired: paid orders fulfilled late, refunds or disputes applied late."
      extra_filter = ""
    }
  }
}

resource "google_monitoring_notification_channel" "email" {
  for_each = var.alert_email == "" ? toset([]) : toset([var.alert_email])

  project      = var.project_id
  display_name = "Shop alerts (${var.environment}) ${each.value}"
  type         = "email"
  labels = {
    email_address = each.value
  }

  depends_on = [google_project_service.enabled]
}

resource "google_logging_metric" "event" {
  for_each = local.log_metrics

  project     = var.project_id
  name        = "${var.name_prefix}/${each.key}"
  description = each.value.description
  filter      = "resource.type=\"cloud_run_revision\" AND (jsonPayload.event=\"${each.value.event}\"${each.value.extra_filter})"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
  }

  depends_on = [google_project_service.enabled]
}

resource "google_monitoring_alert_policy" "log_event" {
  for_each = local.log_metrics

  project               = var.project_id
  display_name          = "[${var.environment}] ${each.value.event}"
  combiner              = "OR"
  notification_channels = local.notification_channels

  conditions {
    display_name = "${each.value.event} logged"

    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.event[each.key].name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "${each.value.description} Follow ${local.runbook} (section `${each.value.event}`)."
  }
}

resource "google_monitoring_alert_policy" "five_xx" {
  project               = var.project_id
  display_name          = "[${var.environment}] Function 5xx rate"
  combiner              = "OR"
  notification_channels = local.notification_channels

  conditions {
    display_name = "5xx responses above ${var.five_xx_ratio_threshold * 100}% per function"

    condition_threshold {
      filter             = "metric.type=\"run.googleapis.com/request_count\" AND resource.type=\"cloud_run_revision\" AND metric.label.response_code_class=\"5xx\""
      denominator_filter = "metric.type=\"run.googleapis.com/request_count\" AND resource.type=\"cloud_run_revision\""
      comparison         = "COMPARISON_GT"
      threshold_value    = var.five_xx_ratio_threshold
      duration           = "300s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }

      denominator_aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }

      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A function answers 5xx (bad input must be 4xx, so a 5xx is a bug or an outage). Follow ${local.runbook} (section `5xx rate`)."
  }

  depends_on = [google_project_service.enabled]
}

# Scheduled jobs. Cloud Scheduler logs every attempt of every job on the job itself
# (resource.type "cloud_scheduler_job", log cloudscheduler.googleapis.com/executions);
# an attempt that fails (any answer that is not 2xx, an unreachable target, a refused
# token) is logged with severity ERROR. The metric has no job restriction, so every job
# of the project is watched, the Firestore export included
# (tests/infra/test_scheduled_job_alerts.py checks that stays so).
resource "google_logging_metric" "scheduler_job_failures" {
  project     = var.project_id
  name        = "${var.name_prefix}/scheduler_job_failures"
  description = "Cloud Scheduler attempts that failed (target answered non-2xx or was unreachable)."
  filter      = "resource.type=\"cloud_scheduler_job\" AND severity>=ERROR"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"

    labels {
      key         = "job_id"
      value_type  = "STRING"
      description = "The failing job."
    }
  }

  label_extractors = {
    job_id = "EXTRACT(resource.labels.job_id)"
  }

  depends_on = [google_project_service.enabled]
}

resource "google_monitoring_alert_policy" "scheduler_job_failures" {
  project               = var.project_id
  display_name          = "[${var.environment}] Scheduled job failing"
  combiner              = "OR"
  notification_channels = local.notification_channels

  conditions {
    display_name = "A Cloud Scheduler attempt failed"

    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.scheduler_job_failures.name}\" AND resource.type=\"cloud_scheduler_job\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.job_id"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A Cloud Scheduler job's attempt failed (4xx, 5xx or unreachable). Follow ${local.runbook} (section `Scheduled job failing`)."
  }

  depends_on = [google_project_service.enabled]
}

locals {
  # Cloud Run services of the functions Cloud Scheduler calls (scheduler.tf).
  scheduled_services = [for name in sort(keys(local.scheduled_functions)) : local.deployed[name].name]
}

# The same failures seen from the functions: any 4xx or 5xx answer of a scheduled
# function (nobody but Cloud Scheduler calls them, and its body never deserves a 4xx).
resource "google_monitoring_alert_policy" "scheduled_function_errors" {
  project               = var.project_id
  display_name          = "[${var.environment}] Scheduled function answered 4xx/5xx"
  combiner              = "OR"
  notification_channels = local.notification_channels

  conditions {
    display_name = "4xx or 5xx answers of a scheduled function"

    condition_threshold {
      filter          = "metric.type=\"run.googleapis.com/request_count\" AND resource.type=\"cloud_run_revision\" AND resource.label.service_name=one_of(${join(",", [for service in local.scheduled_services : "\"${service}\""])}) AND metric.label.response_code_class=one_of(\"4xx\",\"5xx\")"
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name", "metric.label.response_code_class"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A scheduled function answered 4xx or 5xx. Follow ${local.runbook} (section `Scheduled job failing`)."
  }

  depends_on = [google_project_service.enabled]
}

# Uptime: the storefront page, and an API function behind the load balancer (order
# status without a session id must answer 4xx, which proves routing, Cloud Armor and
# the function are up without creating anything).
locals {
  uptime_checks = {
    storefront = {
      path          = "/"
      status_class  = "STATUS_CLASS_2XX"
      content_match = ""
    }
    api = {
      path          = "/api/order-status"
      status_class  = "STATUS_CLASS_4XX"
      content_match = "\"error\""
    }
  }
}

resource "google_monitoring_uptime_check_config" "shop" {
  for_each = local.uptime_checks

  project      = var.project_id
  display_name = "${var.name_prefix}-${var.environment}-${each.key}"
  timeout      = "10s"
  period       = "300s"

  http_check {
    path           = each.value.path
    port           = 443
    use_ssl        = true
    validate_ssl   = true
    request_method = "GET"

    accepted_response_status_codes {
      status_class = each.value.status_class
    }
  }

  dynamic "content_matchers" {
    for_each = each.value.content_match == "" ? [] : [each.value.content_match]
    content {
      content = content_matchers.value
      matcher = "CONTAINS_STRING"
    }
  }

  monitored_resource {
    type = "uptime_url"
    labels = {
      project_id = var.project_id
      host       = var.domain
    }
  }

  depends_on = [google_project_service.enabled]
}

resource "google_monitoring_alert_policy" "uptime" {
  for_each = local.uptime_checks

  project               = var.project_id
  display_name          = "[${var.environment}] Uptime ${each.key}"
  combiner              = "OR"
  notification_channels = local.notification_channels

  conditions {
    display_name = "Uptime check ${each.key} failing"

    condition_threshold {
      filter          = "metric.type=\"monitoring.googleapis.com/uptime_check/check_passed\" AND resource.type=\"uptime_url\" AND metric.label.check_id=\"${google_monitoring_uptime_check_config.shop[each.key].uptime_check_id}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 1
      duration        = "300s"

      aggregations {
        alignment_period     = "1200s"
        per_series_aligner   = "ALIGN_NEXT_OLDER"
        cross_series_reducer = "REDUCE_COUNT_FALSE"
        group_by_fields      = ["resource.label.*"]
      }

      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "The ${each.key} uptime check fails from more than one region. Follow ${local.runbook} (section `uptime`)."
  }
}
