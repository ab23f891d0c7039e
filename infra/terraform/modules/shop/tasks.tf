resource "google_cloud_tasks_queue" "email" {
  project  = var.project_id
  name     = local.email_queue_name
  location = var.region

  rate_limits {
    max_dispatches_per_second = var.email_queue.max_dispatches_per_second
    max_concurrent_dispatches = var.email_queue.max_concurrent_dispatches
  }

  # Retries of a task that got no answer (worker crashed or timed out), on the same
  # schedule the worker uses for the retries it schedules itself after a provider
  # failure (commerce.domain.email_retry: 5, 10, 20, then every 40 s). After
  # max_attempts the task is dropped; the job is still recorded and the every-minute
  # sweeper queues it again. The app counts attempts and logs email.dead (alerted).
  retry_config {
    max_attempts       = var.email_queue.max_attempts
    min_backoff        = var.email_queue.min_backoff
    max_backoff        = var.email_queue.max_backoff
    max_doublings      = var.email_queue.max_doublings
    max_retry_duration = var.email_queue.max_retry_duration
  }

  # Every task in this queue goes to send_email with an OIDC token of the tasks
  # invoker, whatever the enqueuing code put in the task.
  http_target {
    http_method = "POST"

    uri_override {
      scheme                    = "HTTPS"
      host                      = trimsuffix(trimprefix(module.email_worker.uri, "https://"), "/")
      uri_override_enforce_mode = "ALWAYS"
    }

    oidc_token {
      service_account_email = google_service_account.tasks_invoker.email
      audience              = module.email_worker.uri
    }
  }

  stackdriver_logging_config {
    sampling_ratio = 1.0
  }

  depends_on = [google_project_service.enabled]
}
