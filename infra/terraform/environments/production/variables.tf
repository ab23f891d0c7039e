variable "project_id" {
  description = "Google Cloud project of this environment."
  type        = string
}

variable "region" {
  description = "Region of the functions, queue, scheduler jobs and buckets."
  type        = string
  default     = "europe-west1"
}

variable "firestore_location" {
  description = "Firestore location (fixed forever once created)."
  type        = string
}

variable "domain" {
  description = "Public host name of the shop in this environment."
  type        = string
}

variable "app_settings" {
  description = "Extra non-secret settings for the functions (STRIPE_PRICE_ID, MAIL_FROM, SUPPORT_EMAIL, ...)."
  type        = map(string)
  default     = {}
}

variable "functions" {
  description = "Per-function sizing overrides, e.g. { checkout = { min_instances = \"1\" } }."
  type        = map(map(string))
  default     = {}
}

variable "notification_channels" {
  description = "Existing Cloud Monitoring notification channel ids that receive alerts."
  type        = list(string)
  default     = []
}

variable "alert_email" {
  description = "Address for an e-mail notification channel created by Terraform (empty: none)."
  type        = string
  default     = ""
}

variable "backup_retention_days" {
  description = "Days Firestore exports are kept."
  type        = number
  default     = 30
}

variable "checkout_rate_limit_per_minute" {
  description = "Cloud Armor per-IP checkout limit."
  type        = number
  default     = 20
}

variable "download_rate_limit_per_minute" {
  description = "Cloud Armor per-IP download limit."
  type        = number
  default     = 60
}
