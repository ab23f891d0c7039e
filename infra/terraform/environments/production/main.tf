locals {
  environment = "production"
  repo_root   = "${path.module}/../../../.."
}

module "shop" {
  source = "../../modules/shop"

  environment                    = local.environment
  project_id                     = var.project_id
  region                         = var.region
  firestore_location             = var.firestore_location
  domain                         = var.domain
  source_bundle_path             = "${local.repo_root}/build/functions-source.zip"
  firestore_indexes_file         = "${local.repo_root}/firestore.indexes.json"
  app_settings                   = var.app_settings
  functions                      = var.functions
  notification_channels          = var.notification_channels
  alert_email                    = var.alert_email
  backup_retention_days          = var.backup_retention_days
  checkout_rate_limit_per_minute = var.checkout_rate_limit_per_minute
  download_rate_limit_per_minute = var.download_rate_limit_per_minute
  labels                         = { environment = local.environment }
}
