variable "environment" {
  description = "staging or production (becomes ENVIRONMENT in every function)."
  type        = string

  validation {
    condition     = contains(["staging", "production"], var.environment)
    error_message = "environment must be staging or production."
  }
}

variable "project_id" {
  description = "Google Cloud project of this environment (one project per environment)."
  type        = string
}

variable "region" {
  description = "Region of the functions, the tasks queue, the scheduler jobs and the buckets."
  type        = string
}

variable "firestore_location" {
  description = "Firestore location: a region (e.g. europe-west1) or a multi-region (eur3, nam5). Cannot be changed after creation."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of function names and other per-project resource names."
  type        = string
  default     = "shop"
}

variable "domain" {
  description = "The shop's public host name, e.g. shop.example.com (managed certificate, storefront and API)."
  type        = string
}

variable "source_bundle_path" {
  description = "Path of the zip built by `make bundle` (build/functions-source.zip)."
  type        = string
}

variable "firestore_indexes_file" {
  description = "Path of firestore.indexes.json (composite indexes, Firebase CLI format)."
  type        = string
}

variable "app_settings" {
  description = "Extra NON-SECRET settings for every function (STRIPE_PRICE_ID, MAIL_FROM, SUPPORT_EMAIL, ...). Secrets are rejected by the offline checks."
  type        = map(string)
  default     = {}
}

variable "functions" {
  description = "Per-function overrides of the sizing in locals.function_defaults (memory, cpu, timeout_seconds, min_instances, max_instances, concurrency)."
  type        = map(map(string))
  default     = {}
}

variable "email_queue" {
  description = "Retry and rate settings of the e-mail queue."
  type = object({
    max_attempts              = number
    min_backoff               = string
    max_backoff               = string
    max_doublings             = number
    max_retry_duration        = string
    max_dispatches_per_second = number
    max_concurrent_dispatches = number
  })
  default = {
    # The schedule of commerce.domain.email_retry (5, 10, 20, then every 40 s; tests
    # cross-check the numbers). The worker schedules its own retries as new tasks, so
    # this only retries a task that got no answer (worker crashed or timed out); after
    # 10 such tries the sweeper takes the job back (docs/email.md, "Retry schedule").
    max_attempts              = 10
    min_backoff               = "5s"
    max_backoff               = "40s"
    max_doublings             = 3
    max_retry_duration        = "600s"
    max_dispatches_per_second = 5
    max_concurrent_dispatches = 10
  }
}

variable "reconcile_schedule" {
  description = "Cron (in scheduler_time_zone) for the Stripe reconciliation job."
  type        = string
  default     = "*/30 * * * *"
}

variable "email_sweeper_schedule" {
  description = "Cron for the e-mail sweeper (queues e-mail jobs whose task was lost); every minute, email_retry.SWEEP_EVERY."
  type        = string
  default     = "* * * * *"
}

variable "firestore_export_schedule" {
  description = "Cron for the daily Firestore export to the backups bucket."
  type        = string
  default     = "30 2 * * *"
}

variable "scheduler_time_zone" {
  description = "Time zone of the scheduler crons."
  type        = string
  default     = "Etc/UTC"
}

variable "backup_retention_days" {
  description = "Age in days after which Firestore exports are deleted from the backups bucket."
  type        = number
  default     = 90
}

variable "checkout_rate_limit_per_minute" {
  description = "Cloud Armor: checkout requests per client IP per minute before 429."
  type        = number
  default     = 20
}

variable "download_rate_limit_per_minute" {
  description = "Cloud Armor: download requests per client IP per minute before 429."
  type        = number
  default     = 60
}

variable "notification_channels" {
  description = "Ids of existing Cloud Monitoring notification channels (projects/P/notificationChannels/N) that receive every alert."
  type        = list(string)
  default     = []
}

variable "alert_email" {
  description = "If set, an e-mail notification channel is created for this address and added to every alert."
  type        = string
  default     = ""
}

variable "five_xx_ratio_threshold" {
  description = "Alert when more than this fraction of a function's responses are 5xx over 5 minutes."
  type        = number
  default     = 0.05
}

variable "labels" {
  description = "Labels put on the resources that support them."
  type        = map(string)
  default     = {}
}
